"""The hand-off between the consumer thread and the GPU thread: a locked MicroBatcher."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from streamgen.engine.types import Shape
from streamgen.worker.batcher import Batch, MicroBatcher
from streamgen.worker.work_item import WorkItem

__all__ = ["WorkQueue"]


class WorkQueue:
    def __init__(self, batcher: MicroBatcher[Shape, WorkItem]) -> None:
        self._batcher = batcher
        self._cond = threading.Condition()

    def put(self, shape: Shape, item: WorkItem) -> None:
        with self._cond:
            self._batcher.add(shape, item, now=time.monotonic(), priority=item.request.priority)
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
