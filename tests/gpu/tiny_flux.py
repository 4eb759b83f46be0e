"""The tiny FLUX.1 [dev] requests and pixel reads the flux GPU tests share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine


def flux_requests() -> list[GenerationRequest]:
    """Three prompts, seeds and guidance scales at 128x128, [dev]'s 28 steps, model "flux"."""
    base: dict[str, Any] = {"model": "flux", "width": 128, "height": 128, "steps": 28}
    return [
        GenerationRequest(request_id="a", prompt="a red cube", seed=1, guidance_scale=3.5, **base),
        GenerationRequest(request_id="b", prompt="a blue cat", seed=2, guidance_scale=5.0, **base),
        GenerationRequest(request_id="c", prompt="a sea", seed=3, guidance_scale=2.0, **base),
    ]


def flux_pixels(engine: DiffusionEngine, requests: Sequence[GenerationRequest]) -> list[np.ndarray]:
    """Each request's first image as int16 levels, after checking it succeeded in bf16."""
    outcomes = engine.generate(requests)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert {o.dtype for o in outcomes} == {"bfloat16"}
    return [np.asarray(o.images[0], dtype=np.int16) for o in outcomes]
