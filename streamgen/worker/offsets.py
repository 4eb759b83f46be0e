"""Which offset may be committed: the contiguous low-water mark of durable work, per partition.

An offset is *handed out* when its record is polled and *done* when its outputs are durable
(images stored and result acknowledged, or dead letter acknowledged). Completion may be out of
order; the commit point of a partition is the lowest offset still handed out but not done, or
one past the highest offset seen when nothing is outstanding.

An offset may also be *deferred*: taken from the fetch buffer and decoded, but set aside
because its tenant is at its cap on requests in flight (worker/deferrals.py keeps the record).
A deferred offset bounds the commit point like an unfinished one, so durable work above it is
never committed past it; it is handed out later, in any order relative to newer offsets. So
an offset is *seen* once handed out or deferred, and offsets *new* to the tracker still only
increase within a generation: every offset below the highest seen is handed out, deferred,
done or a gap in the log, never unknown (the commit point rests on that). A redelivery of a
seen offset is recognised as such, deferred ones included: their record is kept aside, and the
copy the consumer brings again after a rewind or a resume is not taken twice.

An offset handed out stays *uncommitted* until the broker confirms a commit past it. That count,
not only the unfinished one, is what a crash or a lost partition makes the next owner redo: work
that is durable but not yet committed is repeated too (DESIGN invariant 8). The consumer loop
bounds it by ``max_in_flight``.

Every assignment of a partition starts a new *generation*. Work is tagged with the generation
it was handed out in, so a completion that arrives after the partition was revoked (and maybe
re-assigned) is recognised as stale and never moves a commit point (DESIGN invariant 5).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

__all__ = ["OffsetTracker", "Ticket", "TopicPartitionKey"]

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof that one record was handed out; presented again when its outputs are durable."""

    topic: str
    partition: int
    offset: int
    generation: int

    @property
    def tp(self) -> TopicPartitionKey:
        return (self.topic, self.partition)


@dataclass(slots=True)
class _PartitionState:
    generation: int
    outstanding: set[int] = field(default_factory=set)
    # Min-heap over outstanding offsets; lazily cleaned of offsets already done.
    heap: list[int] = field(default_factory=list)
    highest_seen: int = -1  # the highest offset handed out or deferred
    committed: int = -1  # the last offset committed (the *next* offset to read), -1: none
    # Offsets handed out and not yet below a confirmed commit: a min-heap, since a deferred
    # offset is handed out after newer ones.
    uncommitted: list[int] = field(default_factory=list)
    deferred: set[int] = field(default_factory=set)
    deferred_heap: list[int] = field(default_factory=list)  # lazily cleaned, like ``heap``

    def lowest_outstanding(self) -> int | None:
        while self.heap and self.heap[0] not in self.outstanding:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else None

    def lowest_deferred(self) -> int | None:
        while self.deferred_heap and self.deferred_heap[0] not in self.deferred:
            heapq.heappop(self.deferred_heap)
        return self.deferred_heap[0] if self.deferred_heap else None

    def low_water_mark(self) -> int | None:
        lows = [o for o in (self.lowest_outstanding(), self.lowest_deferred()) if o is not None]
        if lows:
            return min(lows)
        if self.highest_seen >= 0:
            return self.highest_seen + 1
        return None


class OffsetTracker:
    """Offset bookkeeping for all partitions this consumer owns, and the one owner of which
    partition generations are ours. The consumer thread owns it; other threads report
    completions through the loop's events, and may only ask :meth:`is_current`."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, _PartitionState] = {}
        self._next_generation = 1

    # -- membership ------------------------------------------------------------------------
    def assign(self, tp: TopicPartitionKey) -> int:
        """Start tracking ``tp`` under a fresh generation (an earlier one becomes stale)."""
        generation = self._next_generation
        self._next_generation += 1
        self._partitions[tp] = _PartitionState(generation=generation)
        return generation

    def revoke(self, tp: TopicPartitionKey) -> None:
        """Forget ``tp``: its outstanding work can no longer complete or be committed."""
        self._partitions.pop(tp, None)

    def owns(self, tp: TopicPartitionKey) -> bool:
        return tp in self._partitions

    def generation(self, tp: TopicPartitionKey) -> int | None:
        state = self._partitions.get(tp)
        return state.generation if state else None

    def already_handed_out(self, tp: TopicPartitionKey, offset: int) -> bool:
        """True for an offset at or below the highest seen (handed out or deferred) in this
        generation: the consumer delivered it again (librdkafka refetches what it had queued
        when a partition is paused and resumed, and a rewind fetches again what lies above
        the rewind point); it is already in hand, or set aside, and must not be taken twice."""
        state = self._partitions.get(tp)
        return state is not None and offset <= state.highest_seen

    def is_current(self, ticket: Ticket) -> bool:
        """Safe from any thread (the GPU and output threads drop work of partitions that
        moved away): one dict lookup, atomic in CPython, of a state whose generation is fixed
        when it is made; assign and revoke replace or remove the entry, never change it."""
        state = self._partitions.get(ticket.tp)
        return state is not None and state.generation == ticket.generation

    # -- work ------------------------------------------------------------------------------
    def hand_out(self, tp: TopicPartitionKey, offset: int) -> Ticket:
        """Record that ``offset`` was admitted: a new offset (they only move forward within a
        generation) or one deferred earlier."""
        state = self._state(tp)
        if offset in state.deferred:
            state.deferred.discard(offset)
        else:
            self._see(tp, state, offset)
        state.outstanding.add(offset)
        heapq.heappush(state.uncommitted, offset)
        heapq.heappush(state.heap, offset)
        return Ticket(tp[0], tp[1], offset, state.generation)

    def defer(self, tp: TopicPartitionKey, offset: int) -> None:
        """Record that the new ``offset`` was set aside: the commit point stays at or below it
        until it is handed out (and done), or the partition is revoked or lost."""
        state = self._state(tp)
        self._see(tp, state, offset)
        state.deferred.add(offset)
        heapq.heappush(state.deferred_heap, offset)

    def deferred(self, tp: TopicPartitionKey | None = None) -> int:
        """How many offsets are set aside (one partition, or all)."""
        if tp is not None:
            state = self._partitions.get(tp)
            return len(state.deferred) if state else 0
        return sum(len(s.deferred) for s in self._partitions.values())

    def holds_commit_point(self, tp: TopicPartitionKey, offset: int) -> bool:
        """True if the deferred ``offset`` is what keeps ``tp``'s commit point where it is:
        the lowest offset of the partition not yet done. Handing it out (and finishing it)
        is the only way that partition's commits move on."""
        state = self._partitions.get(tp)
        if state is None or offset != state.lowest_deferred():
            return False
        unfinished = state.lowest_outstanding()
        return unfinished is None or offset < unfinished

    def commit_holders(self) -> list[tuple[TopicPartitionKey, int]]:
        """Each partition's deferred offset that holds its commit point, where one does."""
        lowest = ((tp, state.lowest_deferred()) for tp, state in self._partitions.items())
        return [
            (tp, low) for tp, low in lowest if low is not None and self.holds_commit_point(tp, low)
        ]

    def _state(self, tp: TopicPartitionKey) -> _PartitionState:
        state = self._partitions.get(tp)
        if state is None:
            raise KeyError(f"partition {tp} is not assigned")
        return state

    @staticmethod
    def _see(tp: TopicPartitionKey, state: _PartitionState, offset: int) -> None:
        if offset <= state.highest_seen:
            raise ValueError(
                f"offset {offset} of {tp} taken after {state.highest_seen}: "
                "offsets within one assignment must increase (unless deferred)"
            )
        state.highest_seen = offset

    def complete(self, ticket: Ticket) -> bool:
        """Mark the ticket's outputs durable. False (and no effect) if the ticket is stale."""
        state = self._partitions.get(ticket.tp)
        if state is None or state.generation != ticket.generation:
            return False
        if ticket.offset not in state.outstanding:
            raise ValueError(f"ticket {ticket} completed twice or never handed out")
        state.outstanding.discard(ticket.offset)
        return True

    def outstanding(self, tp: TopicPartitionKey | None = None) -> int:
        """How many handed-out offsets are not yet durable (one partition, or all)."""
        if tp is not None:
            state = self._partitions.get(tp)
            return len(state.outstanding) if state else 0
        return sum(len(s.outstanding) for s in self._partitions.values())

    def uncommitted(self, tp: TopicPartitionKey | None = None) -> int:
        """How many handed-out offsets no confirmed commit covers yet, durable or not: the work
        the next owner of these partitions would redo if this worker vanished now."""
        if tp is not None:
            state = self._partitions.get(tp)
            return len(state.uncommitted) if state else 0
        return sum(len(s.uncommitted) for s in self._partitions.values())

    # -- commits ---------------------------------------------------------------------------
    def commit_point(self, tp: TopicPartitionKey) -> int | None:
        """The offset to commit for ``tp`` now, or None if there is nothing new to commit."""
        state = self._partitions.get(tp)
        if state is None:
            return None
        mark = state.low_water_mark()
        if mark is None or mark <= state.committed:
            return None
        return mark

    def commit_points(self) -> dict[TopicPartitionKey, int]:
        points = {tp: self.commit_point(tp) for tp in self._partitions}
        return {tp: off for tp, off in points.items() if off is not None}

    def committed(self, tp: TopicPartitionKey, offset: int) -> None:
        """Record a successful commit. Committed offsets only move forward."""
        state = self._partitions.get(tp)
        if state is None:
            return
        if offset < state.committed:
            raise ValueError(f"commit of {tp} moved back from {state.committed} to {offset}")
        mark = state.low_water_mark()
        if mark is None or offset > mark:
            raise ValueError(f"commit of {tp} at {offset} is past the durable mark {mark}")
        state.committed = offset
        while state.uncommitted and state.uncommitted[0] < offset:
            heapq.heappop(state.uncommitted)

    def confirm(self, tp: TopicPartitionKey, offset: int, generation: int | None) -> bool:
        """Record the broker's answer to a commit made in ``generation``, if it still matters.

        False (and no effect) when the partition was revoked or re-assigned since the commit
        was sent, or when a newer commit was confirmed first.
        """
        state = self._partitions.get(tp)
        if state is None or state.generation != generation or offset <= state.committed:
            return False
        self.committed(tp, offset)
        return True

    def partitions(self) -> list[TopicPartitionKey]:
        return list(self._partitions)
