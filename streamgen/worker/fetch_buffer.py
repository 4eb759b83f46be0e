"""Records fetched but not yet admitted: what keeps the consumer fetching while the window is full.

Pausing a partition makes librdkafka drop every record it had prefetched for it, and a resume
then waits for a new fetch (up to ``fetch.queue.backoff.ms``, 1 s by default: a median 455 ms
stall was measured at every resume). So the loop does not pause when its window of uncommitted
work is full; it keeps polling into this buffer, admits from it as the window frees, and pauses
only when the buffer itself is full.

A buffered record has not been handed out: it is no part of the commit point and costs nothing
to redo (after a crash it is simply read again). Order within a partition is kept (one FIFO);
a revoked, lost or rewound partition's records are dropped, since the consumer will deliver
them again from its committed or rewound position. Pure: no Kafka inside, ``size_of`` and
``partition_of`` are given.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from streamgen.worker.offsets import TopicPartitionKey

__all__ = ["FetchBuffer"]

M = TypeVar("M")


class FetchBuffer(Generic[M]):
    def __init__(
        self,
        *,
        max_records: int,
        max_bytes: int,
        partition_of: Callable[[M], TopicPartitionKey],
        size_of: Callable[[M], int],
    ) -> None:
        if max_records < 1 or max_bytes < 1:
            raise ValueError(
                f"need max_records >= 1 and max_bytes >= 1, got {max_records}, {max_bytes}"
            )
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._partition_of = partition_of
        self._size_of = size_of
        self._records: deque[tuple[M, int]] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def bytes(self) -> int:
        return self._bytes

    def room(self) -> int:
        """How many more records may be fetched now (0 once either bound is reached)."""
        if self._bytes >= self.max_bytes:
            return 0
        return max(self.max_records - len(self._records), 0)

    def full(self) -> bool:
        return self.room() == 0

    def below_half(self) -> bool:
        return len(self._records) <= self.max_records // 2 and self._bytes <= self.max_bytes // 2

    def extend(self, records: Collection[M]) -> None:
        """Add what a poll returned; a poll may overshoot the byte bound by its last record."""
        for record in records:
            size = self._size_of(record)
            self._records.append((record, size))
            self._bytes += size

    def take(self, limit: int) -> list[M]:
        """Up to ``limit`` records, oldest first."""
        taken: list[M] = []
        while self._records and len(taken) < limit:
            record, size = self._records.popleft()
            self._bytes -= size
            taken.append(record)
        return taken

    def drop(self, partitions: Collection[TopicPartitionKey]) -> int:
        """Forget the records of ``partitions``; return how many."""
        if not partitions:
            return 0
        kept: deque[tuple[M, int]] = deque()
        dropped = 0
        for record, size in self._records:
            if self._partition_of(record) in partitions:
                self._bytes -= size
                dropped += 1
            else:
                kept.append((record, size))
        self._records = kept
        return dropped
