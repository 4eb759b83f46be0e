"""Share mode: the records of one poll that are not started yet, and when the lock still leaves
time to start more (pure: no Kafka inside).

The broker lends whole record batches, whatever ``max.poll.records`` asks (it bounds a poll
only at batch boundaries: measured on Kafka 4.2.2, one producer batch of 120 came back whole to
a poll of ``max.poll.records=4``; 120 one-record batches came back 4 at a time), and every
record a poll lends has already cost it one delivery. Releasing what a round cannot take at
once spends those deliveries on records nobody started; a backlog then reaches the delivery
limit unserved (issue 27's defect). So a round *keeps* everything its poll lent and feeds the
GPU from it as records finish, while the lock's deadline leaves time for the batches ahead:
only what is still unstarted when no batch fits any more is released (one delivery per lock
period in which the worker was busy all along).

Order: the highest delivery count first (a record already released before is nearer the
limit), then as the poll returned them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["FeedLimits", "RoundFeed", "deliveries"]

Record = TypeVar("Record")


def deliveries(message: Any) -> int:
    """The broker's count of a lent record's hand-outs, this one included."""
    return int(message.delivery_count() or 1)


@dataclass(frozen=True)
class FeedLimits:
    window: int  # records started and not yet durable at once (no more than max_in_flight)
    batch_size: int  # engine.max_batch_size
    batch_s: float  # worker.share_batch_s: the longest a batch is expected to take


class RoundFeed(Generic[Record]):
    """The unstarted records of one round, highest delivery count first."""

    def __init__(
        self,
        records: Iterable[Record],
        deliveries: Callable[[Record], int],
        limits: FeedLimits,
        deadline: float,
    ) -> None:
        if limits.window < 1 or limits.batch_size < 1 or limits.batch_s <= 0:
            raise ValueError(f"a feed needs a window, a batch and a batch time: {limits}")
        ordered = sorted(enumerate(records), key=lambda pair: (-deliveries(pair[1]), pair[0]))
        self._waiting = deque(record for _, record in ordered)
        self._limits = limits
        self._deadline = deadline

    def __len__(self) -> int:
        return len(self._waiting)

    def room(self, unfinished: int, now: float) -> int:
        """How many more may start now: the window's free places, and no more than the
        batches that still fit before the deadline (``unfinished`` records are ahead)."""
        by_time = self._batches(now) * self._limits.batch_size - unfinished
        return max(0, min(self._limits.window - unfinished, by_time, len(self._waiting)))

    def take(self, unfinished: int, now: float) -> list[Record]:
        """The next records to start, as many as :meth:`room` allows."""
        return [self._waiting.popleft() for _ in range(self.room(unfinished, now))]

    def beyond(self, now: float) -> list[Record]:
        """What this round cannot count on starting, taken out of the feed (the newest-counted
        last): past the window and past the batches that fit before the deadline at
        ``batch_s`` each. A worker that requeues it at once lets idle members serve it."""
        keep = max(self._limits.window, self._batches(now) * self._limits.batch_size)
        excess = [self._waiting.pop() for _ in range(max(0, len(self._waiting) - keep))]
        return excess[::-1]

    def too_late(self, now: float) -> bool:
        """No batch fits before the deadline any more: what waits will not be started."""
        return self._deadline - now < self._limits.batch_s

    def _batches(self, now: float) -> int:  # whole batches that fit before the deadline
        return math.floor(max(0.0, self._deadline - now) / self._limits.batch_s)

    def rest(self) -> list[Record]:
        """Everything still waiting (to be released), and the feed is empty."""
        rest, self._waiting = list(self._waiting), deque()
        return rest
