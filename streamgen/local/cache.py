"""Where downloaded jars and built binaries are kept between runs, and a lock to build them once.

The cache lives outside the state dir on purpose: ``streamgen dev down --purge`` and every test
session's fresh state dir must not throw away a five-minute MinIO build.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_root", "exclusive"]


def cache_root() -> Path:
    """``$STREAMGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/streamgen``, else ``~/.cache/streamgen``."""
    explicit = os.environ.get("STREAMGEN_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "streamgen"


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` so two processes never build into it at once
    (``scripts/setup`` and a test session may both try to prepare the stack)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
