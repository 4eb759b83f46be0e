"""``engine.compile_cache_dir``: torch.compile's caches on a volume that outlives the worker.

A compiled worker spent 70-140 s compiling at every start, while it already held partitions.
With the caches on a persistent volume, a restart with the same model, shapes and versions
finds every compiled graph there and only traces:

- Inductor's FX graph cache and the AOTAutograd cache live under ``<dir>/inductor``
  (``TORCHINDUCTOR_CACHE_DIR``) and Triton's compiled kernels under ``<dir>/triton``
  (``TRITON_CACHE_DIR``); both caches are switched on explicitly;
- torch's portable "mega-cache" (``torch.compiler.save_cache_artifacts``, torch >= 2.7) is
  written to ``<dir>/artifacts-<torch>-<device>.bin`` after warm-up and loaded before anything
  compiles, so a directory copied from another node (or a shared volume) also warms it.

Entries are keyed by torch on source, shapes, versions and device, so a stale entry is never
used, only ignored.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from streamgen.errors import ConfigError

__all__ = ["SETTING", "CompileCache", "Compiler"]

log = logging.getLogger(__name__)

SETTING = "engine.compile_cache_dir"
_DIRECTORIES = (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TRITON_CACHE_DIR", "triton"))


class Compiler(Protocol):
    """The part of ``torch.compiler`` used here (a fake in tests)."""

    def save_cache_artifacts(self) -> tuple[bytes, Any] | None: ...

    def load_cache_artifacts(self, serialized_artifacts: bytes) -> Any: ...


class CompileCache:
    """A checked, writable cache directory, and the artifacts file inside it."""

    def __init__(self, directory: str, *, label: str) -> None:
        """``label`` names what the artifacts were compiled with (torch version, device)."""
        self.path = Path(directory).expanduser().absolute()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            # A real write, not os.access: root passes access checks on a read-only volume.
            with tempfile.NamedTemporaryFile(dir=self.path, prefix=".probe-"):
                pass
        except OSError as exc:
            raise ConfigError(
                SETTING, f"{str(self.path)!r} is not a writable directory: {exc}"
            ) from None
        safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label)
        self.artifacts = self.path / f"artifacts-{safe}.bin"

    def configure(self) -> None:
        """Point Inductor and Triton at the directory. Call before anything compiles."""
        for variable, sub in _DIRECTORIES:
            previous, now = os.environ.get(variable), str(self.path / sub)
            os.environ[variable] = now
            if previous and previous != now:
                log.info("%s=%s replaces %s (%s)", variable, now, previous, SETTING)
        import torch._functorch.config as functorch_config
        import torch._inductor.config as inductor_config

        inductor_config.fx_graph_cache = True
        functorch_config.enable_autograd_cache = True

    def load(self, compiler: Compiler | None = None) -> bool:
        """Load saved artifacts into torch's caches, if there are any; True if loaded."""
        compiler = compiler or _torch_compiler()
        if compiler is None or not self.artifacts.exists():
            return False
        try:
            compiler.load_cache_artifacts(self.artifacts.read_bytes())
        except Exception as exc:
            # A corrupt or foreign file costs a cold compile, never the start.
            log.warning("compile cache %s not loaded: %s", self.artifacts, exc)
            return False
        log.info("compile cache artifacts loaded from %s", self.artifacts)
        return True

    def save(self, compiler: Compiler | None = None) -> bool:
        """Write what this process compiled (atomically); True if anything was written."""
        compiler = compiler or _torch_compiler()
        saved = compiler.save_cache_artifacts() if compiler is not None else None
        if not saved or not saved[0]:
            return False
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".artifacts-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(saved[0])
            # Another worker on the same volume may write at the same time: whole files only.
            Path(tmp).replace(self.artifacts)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            log.warning("compile cache artifacts not saved to %s: %s", self.artifacts, exc)
            return False
        log.info("compile cache artifacts saved to %s (%d bytes)", self.artifacts, len(saved[0]))
        return True


def _torch_compiler() -> Compiler | None:
    import torch

    compiler: Any = torch.compiler
    if not hasattr(compiler, "save_cache_artifacts"):  # torch < 2.7: the directories only
        return None
    return compiler  # type: ignore[no-any-return]
