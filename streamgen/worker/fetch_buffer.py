"""Records fetched but not yet admitted: what keeps the consumer fetching while the window is full.

Pausing a partition makes librdkafka drop every record it had prefetched for it, and a resume
then waits for a new fetch (up to ``fetch.queue.backoff.ms``, 1 s by default: a median 455 ms
stall was measured at every resume). So the loop does not pause when its window of uncommitted
work is full; it keeps polling into this buffer, admits from it as the window frees, and pauses
only when the buffer itself is full.

Fair across partitions (DESIGN invariant 11). librdkafka hands out a backlog one partition's
fetch at a time (a fetch brings up to ``max.partition.fetch.bytes``, thousands of small
requests, of each partition in turn), so a buffer filled in arrival order held one partition
and the worker served its partitions one after another (53 s before partition 0's first
record was seen, issue 22). So each partition may hold at most its share of the buffer: what a
poll brings beyond it is dropped and the partition is *held* (the loop pauses it and rewinds it
to the first record dropped) until it has drained to half its share; and records are taken
round-robin across partitions.

A buffered record has not been handed out: it is no part of the commit point and costs nothing
to redo (after a crash it is simply read again). Order within a partition is kept (one FIFO
each); a revoked, lost or rewound partition's records are dropped, since the consumer will
deliver them again from its committed or rewound position. Pure: no Kafka inside;
``partition_of``, ``offset_of`` and ``size_of`` are given.

Priority lanes (``topics.lanes``): each lane's partitions have their own shares, so a bulk
backlog cannot fill the buffer and keep an interactive record from being fetched. Records are
taken lane by lane as a :class:`~streamgen.worker.lane_scheduler.LaneScheduler` says (counting
records: the highest lane first, every lane its minimum share), round-robin within a lane; and
the lanes below the highest leave the last ``reserve`` places of the window to it, so a bulk
backlog admitted up to the window's edge cannot keep an interactive record out of it until a
commit frees room.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable
from typing import Generic, TypeVar

from streamgen.worker.lane_scheduler import LaneScheduler
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
        offset_of: Callable[[M], int],
        size_of: Callable[[M], int],
        lane_of: Callable[[TopicPartitionKey], int] = lambda _: 0,
        lanes: LaneScheduler | None = None,
    ) -> None:
        if max_records < 1 or max_bytes < 1:
            raise ValueError(
                f"need max_records >= 1 and max_bytes >= 1, got {max_records}, {max_bytes}"
            )
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._partition_of = partition_of
        self._offset_of = offset_of
        self._size_of = size_of
        self._lane_of = lane_of
        self._lanes = lanes or LaneScheduler([1.0])
        # Insertion order of the dict is the round-robin order; the first key goes next.
        self._queues: dict[TopicPartitionKey, deque[tuple[M, int]]] = {}
        self._held: dict[TopicPartitionKey, int] = {}  # held partition -> offset to rewind to
        self._count = 0
        self._bytes = 0

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    def room(self) -> int:
        """How many more records may be fetched now (0 once either bound is reached)."""
        if self._bytes >= self.max_bytes:
            return 0
        return max(self.max_records - self._count, 0)

    def full(self) -> bool:
        return self.room() == 0

    def below_half(self) -> bool:
        return self._count <= self.max_records // 2 and self._bytes <= self.max_bytes // 2

    def count(self, tp: TopicPartitionKey) -> int:
        """How many records of ``tp`` wait here."""
        return len(self._queues.get(tp, ()))

    def lane_of(self, tp: TopicPartitionKey) -> int:
        """The priority lane of ``tp``'s records (0: the highest)."""
        return self._lane_of(tp)

    def share(self, partitions: int) -> int:
        """How many records one of ``partitions`` owned partitions may hold."""
        return max(1, self.max_records // max(1, partitions))

    def held(self) -> dict[TopicPartitionKey, int]:
        """Held partitions and the offset each must be rewound to (the first record dropped)."""
        return dict(self._held)

    def extend(self, records: Iterable[M], share: int) -> dict[TopicPartitionKey, int]:
        """Add what a poll returned, each partition up to ``share`` records.

        Returns the partitions held by this call, each with the offset to rewind it to: the
        records from there on were dropped and must be fetched again. Records of a partition
        already held are dropped too (prefetched before its pause took effect); its rewind
        offset stays the lowest one dropped, so nothing is ever skipped. A poll may overshoot
        the byte bound by its last record.
        """
        newly: dict[TopicPartitionKey, int] = {}
        for record in records:
            tp = self._partition_of(record)
            offset = self._offset_of(record)
            if tp in self._held:
                self._held[tp] = min(self._held[tp], offset)
                continue
            queue = self._queues.setdefault(tp, deque())
            if len(queue) >= share:
                self._held[tp] = newly[tp] = offset
                continue
            size = self._size_of(record)
            queue.append((record, size))
            self._count += 1
            self._bytes += size
        return newly

    def releasable(self, share: int) -> list[TopicPartitionKey]:
        """Held partitions that have drained to half their share: the loop may resume them."""
        return [tp for tp in self._held if len(self._queues.get(tp, ())) <= share // 2]

    def release(self, tp: TopicPartitionKey) -> None:
        """The loop resumed ``tp`` from its rewind offset: accept its records again."""
        self._held.pop(tp, None)

    def take(self, limit: int, reserve: int = 0) -> list[M]:
        """Up to ``limit`` records, lane by lane as the scheduler says, one partition after
        another (round-robin) within a lane, each partition's records oldest first. Lanes
        below the highest stop ``reserve`` records short of ``limit``."""
        taken: list[M] = []
        while self._queues and len(taken) < limit:
            tp = self._next_partition(reserve_reached=len(taken) >= limit - reserve)
            if tp is None:
                break
            queue = self._queues.pop(tp)
            record, size = queue.popleft()
            self._count -= 1
            self._bytes -= size
            taken.append(record)
            if queue:
                self._queues[tp] = queue  # to the back of the round
        return taken

    def _next_partition(self, *, reserve_reached: bool) -> TopicPartitionKey | None:
        """The partition whose record goes next: the first of the round, of the lane chosen."""
        if self._lanes.lanes == 1:
            return next(iter(self._queues))  # no lanes: the round alone, as ever
        waiting = {self._lane_of(tp) for tp in self._queues}
        allowed = waiting & {0} if reserve_reached else waiting
        if not allowed:
            return None
        lane = self._lanes.choose(dict.fromkeys(allowed, 1.0))
        # A lower lane held back by the reserve still has work waiting: it earns its share
        # meanwhile, and is owed a place as soon as the window has room beyond the reserve.
        self._lanes.charge({lane: 1.0}, waiting)
        return next(tp for tp in self._queues if self._lane_of(tp) == lane)

    def drop(self, partitions: Collection[TopicPartitionKey]) -> int:
        """Forget the records and the hold of ``partitions``; return how many records."""
        dropped = 0
        for tp in partitions:
            self._held.pop(tp, None)
            queue = self._queues.pop(tp, None) or deque()
            dropped += len(queue)
            self._count -= len(queue)
            self._bytes -= sum(size for _, size in queue)
        return dropped
