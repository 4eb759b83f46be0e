"""What an exception from a batch means, and how a failing batch is narrowed to its culprits.

Three kinds of failure reach the engine:

- out of memory: the batch was too big; halves are retried (never dropped), and a single
  image that still does not fit is a per-request error;
- any other error: some request in the batch is poison; halves are retried until the poison
  request is alone and fails by itself while the others succeed;
- a fatal device error: the CUDA context is gone, nothing more can run in this process, so it
  is raised as :class:`~streamgen.errors.DeviceLost` and the worker exits without committing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from streamgen.errors import DeviceLost, GenerationFailed

__all__ = ["FailureKind", "classify_device_error", "failure_for", "run_isolating"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class FailureKind(enum.Enum):
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    ERROR = "GENERATION_ERROR"
    FATAL = "DEVICE_LOST"


# Substrings of CUDA error messages after which the context is unusable (sticky errors).
_FATAL_MARKERS = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "uncorrectable ecc",
    "ecc error",
    "illegal instruction",
    "misaligned address",
    "cuda error: launch failure",
    "gpu has fallen off the bus",
    "cudaerrordevicesunavailable",
)


def classify_device_error(exc: BaseException) -> FailureKind:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return FailureKind.OUT_OF_MEMORY
    message = str(exc).lower()
    if isinstance(exc, RuntimeError):
        if any(marker in message for marker in _FATAL_MARKERS):
            return FailureKind.FATAL
        # cuDNN and cuBLAS report allocation failures as plain RuntimeErrors.
        if "out of memory" in message or "cudnn_status_alloc_failed" in message:
            return FailureKind.OUT_OF_MEMORY
    return FailureKind.ERROR


def failure_for(kind: FailureKind, exc: BaseException) -> GenerationFailed:
    return GenerationFailed(f"{type(exc).__name__}: {exc}", code=kind.value)


def run_isolating(
    items: Sequence[T],
    run: Callable[[Sequence[T]], list[R]],
    failed: Callable[[T, GenerationFailed], R],
    *,
    after_oom: Callable[[int], None] = lambda size: None,
) -> list[R]:
    """``run(items)``; if it raises, retry each half until the failing items are alone.

    Returns one result per item, in order: ``run``'s results, or ``failed(item, error)`` for an
    item that fails by itself. ``after_oom(size)`` is told the size of a batch that ran out of
    memory (to free the cache and remember a smaller limit) before its halves are retried.
    """
    try:
        return run(items)
    except Exception as exc:
        kind = classify_device_error(exc)
        if kind is FailureKind.FATAL:
            raise DeviceLost(f"fatal device error: {exc}") from exc
        if kind is FailureKind.OUT_OF_MEMORY:
            after_oom(len(items))
        if len(items) == 1:
            log.warning("request failed alone (%s): %s", kind.value, exc)
            return [failed(items[0], failure_for(kind, exc))]
        log.info("batch of %d failed (%s); retrying halves", len(items), kind.value)
    mid = len(items) // 2
    return [
        *run_isolating(items[:mid], run, failed, after_oom=after_oom),
        *run_isolating(items[mid:], run, failed, after_oom=after_oom),
    ]
