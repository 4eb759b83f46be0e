"""The hand-off between the consumer thread and the GPU thread: a locked MicroBatcher.

Items are batched by their engine shape, computed here, so that whoever puts work in (the
consumer loop, the GPU thread retrying a request) needs nothing of the engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import Shape
from streamgen.worker.batcher import Batch, MicroBatcher
from streamgen.worker.work_item import WorkItem

__all__ = ["WorkQueue"]


class WorkQueue:
    def __init__(
        self,
        batcher: MicroBatcher[Shape, WorkItem],
        shape_of: Callable[[GenerationRequest], Shape],
        lane_of: Callable[[WorkItem], int] = lambda _: 0,
    ) -> None:
        self._batcher = batcher
        self._shape_of = shape_of
        self._lane_of = lane_of
        self._cond = threading.Condition()

    def put(self, item: WorkItem) -> None:
        self.put_all([item])

    def put_all(self, items: list[WorkItem]) -> None:
        """Several items at once, under one lock: the GPU thread sees them together, so a batch
        is never cut short by taking the first of them alone (share mode's rounds)."""
        shaped = [(self._shape_of(item.request), item) for item in items]
        with self._cond:
            now = time.monotonic()
            for shape, item in shaped:
                self._batcher.add(
                    shape,
                    item,
                    now=now,
                    priority=item.request.priority,
                    lane=self._lane_of(item),
                )
            self._cond.notify()

    def take(self, timeout: float) -> Batch[Shape, WorkItem] | None:
        """The next ready batch, waiting at most ``timeout`` seconds for one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                batch = self._batcher.next_batch(now)
                if batch is not None or now >= deadline:
                    return batch
                wait = self._batcher.seconds_until_ready(now)
                self._cond.wait(min(deadline - now, wait if wait is not None else timeout))

    def remove(self, predicate: Callable[[WorkItem], bool]) -> list[WorkItem]:
        with self._cond:
            return self._batcher.remove(predicate)

    def flush(self) -> None:
        with self._cond:
            self._batcher.flush()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._batcher)
