"""An engine whose batches take a FIXED time without using the CPU (issue 27's benchmark).

Share-group and consumer-group queueing is what the share benchmark measures, on a 2-core VM
shared with other work: an engine that burnt CPU would measure the cores, not the queue. So a
batch costs ``batch_s`` of sleep (a GPU busy with it, the worker's CPU free), and a batch that
holds a *slow* request (its id ends in :data:`SLOW_SUFFIX`) costs ``slow_factor`` times that, as
a GPU batch lasts as long as its longest member. Everything else is the no-op engine's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from benchmarks.noop_engine import NoopEngine
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import CancelCheck, GenerationOutcome, StepObserver

__all__ = ["SLOW_SUFFIX", "FixedCostEngine", "batch_seconds"]

SLOW_SUFFIX = "-slow"


def batch_seconds(request_ids: Sequence[str], batch_s: float, slow_factor: float) -> float:
    """The time a batch of these requests takes: ``batch_s``, or ``slow_factor`` times it when
    any of them is slow. The size of the batch does not matter (a GPU batch up to the limit)."""
    if not request_ids:
        return 0.0
    slow = any(i.endswith(SLOW_SUFFIX) for i in request_ids)
    return batch_s * (slow_factor if slow else 1.0)


class FixedCostEngine(NoopEngine):
    """``sleep``: how the time is spent (time.sleep; a test passes a recorder)."""

    def __init__(
        self,
        *,
        batch_s: float,
        max_batch_size: int,
        slow_factor: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if batch_s < 0 or slow_factor < 1:
            raise ValueError(f"batch_s={batch_s}, slow_factor={slow_factor}: need >= 0 and >= 1")
        super().__init__(max_batch_size=max_batch_size)
        self._batch_s = batch_s
        self._slow_factor = slow_factor
        self._sleep = sleep

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        ids = [r.request_id for r in requests]
        self._sleep(batch_seconds(ids, self._batch_s, self._slow_factor))
        return super().generate(requests, cancelled=cancelled, on_step=on_step)
