"""The diffusion engine: batched generation that gives every request the image it would get alone.

Import :class:`DiffusionEngine` from here; it loads torch and diffusers only when constructed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamgen.engine.types import CancelCheck, Engine, GenerationOutcome, Shape, shape_of

if TYPE_CHECKING:
    from streamgen.engine.engine import DiffusionEngine
    from streamgen.engine.schedulers import SCHEDULERS

__all__ = [
    "SCHEDULERS",
    "CancelCheck",
    "DiffusionEngine",
    "Engine",
    "GenerationOutcome",
    "Shape",
    "shape_of",
]

_LAZY = {
    "DiffusionEngine": "streamgen.engine.engine",
    "SCHEDULERS": "streamgen.engine.schedulers",
}


def __getattr__(name: str) -> Any:
    # torch takes seconds to import; the worker's pure logic and the CLI must not pay for it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamgen.engine' has no attribute {name!r}")
