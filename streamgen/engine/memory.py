"""How many images of one shape fit on the device: probed once, remembered, lowered on OOM."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Hashable

import torch

from streamgen.engine.batch_failures import FailureKind, classify_device_error
from streamgen.errors import DeviceLost

__all__ = ["CPU_MAX_BATCH", "CUDA_MAX_BATCH", "BatchLimits", "largest_fitting_power_of_two"]

log = logging.getLogger(__name__)

# A CPU gains nothing from wider batches past a few images; a bound keeps latency per batch sane.
CPU_MAX_BATCH = 8
# Past 64 images a batch only adds latency: the GPU is saturated long before (docs/benchmarks.md).
CUDA_MAX_BATCH = 64


def largest_fitting_power_of_two(fits: Callable[[int], bool], cap: int) -> int:
    """The largest power of two <= ``cap`` for which ``fits`` holds (1 if none does).

    Sizes are tried upwards and the first failure stops the search: memory use grows with
    the batch, so nothing larger would fit either.
    """
    best, size = 1, 1
    while size <= cap:
        if not fits(size):
            break
        best = size
        size *= 2
    return best


class BatchLimits:
    """The maximum batch size per key (shape and device), from settings or from one probe."""

    def __init__(self, *, fixed: int, cap: int, probe: Callable[[Hashable, int], None]) -> None:
        """``fixed`` > 0 overrides probing; ``probe(key, size)`` runs a batch or raises OOM."""
        self._fixed = fixed
        self._cap = cap
        self._probe = probe
        self._limits: dict[Hashable, int] = {}

    def get(self, key: Hashable) -> int:
        if key not in self._limits:
            if self._fixed > 0:
                self._limits[key] = self._fixed
            else:
                fits = lambda n: self._fits(key, n)  # noqa: E731
                self._limits[key] = largest_fitting_power_of_two(fits, self._cap)
                log.info("max batch size for %s: %d (probed)", key, self._limits[key])
        return self._limits[key]

    @property
    def cap(self) -> int:
        return self._cap

    def known(self, key: Hashable) -> int | None:
        """The limit if already decided (fixed or probed), without probing for it."""
        if key not in self._limits and self._fixed > 0:
            return self._fixed
        return self._limits.get(key)

    def lower(self, key: Hashable, failed_size: int) -> None:
        """Remember that ``failed_size`` ran out of memory, so later batches stay below it."""
        current = self.get(key)
        self._limits[key] = max(1, min(current, failed_size // 2))
        free_device_memory()

    def _fits(self, key: Hashable, size: int) -> bool:
        try:
            self._probe(key, size)
        except Exception as exc:
            kind = classify_device_error(exc)
            if kind is FailureKind.FATAL:
                raise DeviceLost(f"fatal device error while probing {key}: {exc}") from exc
            if kind is not FailureKind.OUT_OF_MEMORY:
                # The shape itself cannot run (it came from a request): stop probing here.
                # Its requests then fail one by one in the engine, and the worker goes on.
                log.warning("probing %s at batch size %d failed: %s", key, size, exc)
            return False
        finally:
            free_device_memory()
        return True


def free_device_memory() -> None:
    """Return cached blocks to the allocator so the retry after an OOM starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
