"""OffsetTracker with deferred offsets (per-tenant caps, worker/deferrals.py): records set aside
and handed out later, in any order, with rewinds, redeliveries, revokes and losses between.

Against a model of the log and of the consumer's fetch position: no commit passes an offset
whose record is not done in the owning generation (deferred, unfinished or never taken), the
broker's committed offset never moves back, a redelivered offset is never taken twice, and
once everything set aside is handed out and finished, every record of the log is committed:
nothing set aside was lost, whatever rewound, moved or was lost in between.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streamgen.worker.offsets import OffsetTracker, Ticket, TopicPartitionKey

TP = ("requests", 0)
PARTITIONS = [("requests", 0), ("requests", 1)]


def owning(tp: TopicPartitionKey) -> OffsetTracker:
    tracker = OffsetTracker()
    tracker.assign(tp)
    return tracker


def test_a_deferred_offset_holds_the_commit_point_and_is_handed_out_later() -> None:
    tracker = owning(TP)
    first = tracker.hand_out(TP, 0)
    tracker.defer(TP, 1)
    later = [tracker.hand_out(TP, off) for off in (2, 3)]
    for ticket in (first, *later):
        tracker.complete(ticket)
    assert tracker.commit_point(TP) == 1  # 2 and 3 are durable, 1 is not even started
    assert tracker.already_handed_out(TP, 1)  # fetched again after a rewind: not taken twice
    assert tracker.holds_commit_point(TP, 1) and tracker.commit_holders() == [(TP, 1)]
    tracker.committed(TP, 1)
    assert tracker.uncommitted(TP) == 2  # 2 and 3: a crash now redoes them
    deferred = tracker.hand_out(TP, 1)  # after newer offsets: allowed, it was deferred
    assert tracker.deferred(TP) == 0 and tracker.commit_point(TP) is None
    tracker.complete(deferred)
    assert tracker.commit_point(TP) == 4


def test_a_deferred_offset_above_an_unfinished_one_does_not_hold_the_commit_point() -> None:
    tracker = owning(TP)
    tracker.hand_out(TP, 0)
    tracker.defer(TP, 1)
    tracker.defer(TP, 2)
    assert not tracker.holds_commit_point(TP, 1)  # 0 holds it, and finishes on its own
    assert not tracker.holds_commit_point(TP, 2)  # not the lowest set aside
    assert tracker.commit_holders() == []


def test_new_offsets_still_increase_and_a_deferred_offset_is_handed_out_once() -> None:
    tracker = owning(TP)
    tracker.defer(TP, 5)
    with pytest.raises(ValueError, match="must increase"):
        tracker.defer(TP, 4)  # below what was seen and not set aside: a skipped record
    with pytest.raises(ValueError, match="must increase"):
        tracker.defer(TP, 5)
    tracker.hand_out(TP, 5)
    with pytest.raises(ValueError, match="must increase"):
        tracker.hand_out(TP, 5)


def test_revoking_a_partition_forgets_what_it_set_aside() -> None:
    tracker = owning(TP)
    tracker.defer(TP, 0)
    tracker.revoke(TP)
    assert tracker.deferred() == 0
    tracker.assign(TP)
    assert not tracker.already_handed_out(TP, 0)  # the new owner's record to take again


class DeferringConsumer(RuleBasedStateMachine):
    """A log per partition, a consumer position per partition, and the worker's choices."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = OffsetTracker()
        self.log_end = dict.fromkeys(PARTITIONS, 0)  # records at 0 .. log_end - 1
        self.broker_committed = dict.fromkeys(PARTITIONS, 0)
        self.position: dict[TopicPartitionKey, int] = {}  # owned partitions only
        self.generation: dict[TopicPartitionKey, int] = {}
        self.deferred: dict[TopicPartitionKey, set[int]] = {}
        self.outstanding: list[Ticket] = []
        self.done: dict[TopicPartitionKey, set[int]] = {}  # this generation's finished offsets
        self.taken: dict[TopicPartitionKey, list[int]] = {}  # handed out or deferred
        self.start: dict[TopicPartitionKey, int] = {}  # where this generation began to read

    # -- the log and the group -------------------------------------------------------------
    @rule(tp=st.sampled_from(PARTITIONS), n=st.integers(1, 4))
    def produce(self, tp: TopicPartitionKey, n: int) -> None:
        self.log_end[tp] += n

    @precondition(lambda self: len(self.position) < len(PARTITIONS))
    @rule(data=st.data())
    def assign(self, data: st.DataObject) -> None:
        self.assign_partition(
            data.draw(st.sampled_from([p for p in PARTITIONS if p not in self.position]))
        )

    @precondition(lambda self: self.position)
    @rule(data=st.data(), lost=st.booleans())
    def revoke(self, data: st.DataObject, lost: bool) -> None:
        tp = data.draw(st.sampled_from(sorted(self.position)))
        if not lost:
            self.commit_one(tp)  # a revoke commits what is durable; a loss commits nothing
        self.tracker.revoke(tp)
        for table in (self.position, self.generation, self.start):
            del table[tp]
        del self.deferred[tp], self.done[tp], self.taken[tp]
        self.outstanding = [t for t in self.outstanding if t.tp != tp]

    # -- the worker ------------------------------------------------------------------------
    @precondition(lambda self: self.position)
    @rule(data=st.data(), choice=st.sampled_from(["hand out", "defer", "decode fails"]))
    def fetch(self, data: st.DataObject, choice: str) -> None:
        tp = data.draw(st.sampled_from(sorted(self.position)))
        offset = self.position[tp]
        if offset >= self.log_end[tp]:
            return
        self.position[tp] += 1
        if self.tracker.already_handed_out(tp, offset):
            assert offset in self.taken[tp], f"{tp}@{offset} never taken, yet dropped as seen"
            return  # a redelivery: the record is in hand or set aside already
        assert offset not in self.taken[tp], f"{tp}@{offset} would be taken twice"
        if choice == "decode fails":
            self.position[tp] = offset  # Pauses.block: rewind to it, retry later
        elif choice == "defer":
            self.tracker.defer(tp, offset)
            self.deferred[tp].add(offset)
            self.taken[tp].append(offset)
        else:
            self.outstanding.append(self.tracker.hand_out(tp, offset))
            self.taken[tp].append(offset)

    @precondition(lambda self: self.position)
    @rule(data=st.data())
    def rewind(self, data: st.DataObject) -> None:
        """A held partition's rewind, or librdkafka fetching again what it had queued: the
        position moves back anywhere this generation has fetched (below the broker's
        committed offset too: committing does not move the fetch position)."""
        tp = data.draw(st.sampled_from(sorted(self.position)))
        self.position[tp] = data.draw(st.integers(self.start[tp], self.position[tp]))

    @precondition(lambda self: any(self.deferred.values()))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        tp = data.draw(st.sampled_from(sorted(tp for tp, d in self.deferred.items() if d)))
        offset = data.draw(st.sampled_from(sorted(self.deferred[tp])))
        self.deferred[tp].discard(offset)
        self.outstanding.append(self.tracker.hand_out(tp, offset))

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        ticket = self.outstanding.pop(data.draw(st.integers(0, len(self.outstanding) - 1)))
        assert self.tracker.complete(ticket)
        self.done[ticket.tp].add(ticket.offset)

    @rule()
    def commit(self) -> None:
        for tp in list(self.tracker.commit_points()):
            self.commit_one(tp)

    def commit_one(self, tp: TopicPartitionKey) -> None:
        point = self.tracker.commit_point(tp)
        if point is None:
            return
        assert point >= self.broker_committed[tp], "the commit point moved back"
        unfinished = set(range(self.broker_committed[tp], point)) - self.done[tp]
        assert not unfinished, f"commit {point} of {tp} passes unfinished {sorted(unfinished)}"
        self.tracker.committed(tp, point)
        self.broker_committed[tp] = point

    # -- what must hold --------------------------------------------------------------------
    @invariant()
    def the_tracker_knows_what_is_set_aside(self) -> None:
        for tp in PARTITIONS:
            assert self.tracker.deferred(tp) == len(self.deferred.get(tp, ()))

    @invariant()
    def uncommitted_is_what_a_new_owner_would_redo(self) -> None:
        for tp, taken in self.taken.items():
            handed = [o for o in taken if o not in self.deferred[tp]]
            redo = sum(1 for o in handed if o >= self.broker_committed[tp])
            assert self.tracker.uncommitted(tp) == redo

    def teardown(self) -> None:
        """Everything set aside is handed out, everything finishes, every partition is
        owned and read to its end: then every record of the log is committed."""
        for tp in PARTITIONS:
            if tp not in self.position:
                self.assign_partition(tp)
        for tp in PARTITIONS:
            for offset in sorted(self.deferred[tp]):
                self.outstanding.append(self.tracker.hand_out(tp, offset))
            self.deferred[tp].clear()
            while self.position[tp] < self.log_end[tp]:
                offset = self.position[tp]
                self.position[tp] += 1
                if not self.tracker.already_handed_out(tp, offset):
                    self.outstanding.append(self.tracker.hand_out(tp, offset))
                    self.taken[tp].append(offset)
        for ticket in self.outstanding:
            assert self.tracker.complete(ticket)
            self.done[ticket.tp].add(ticket.offset)
        self.commit()
        assert self.broker_committed == self.log_end, "a record was lost"

    def assign_partition(self, tp: TopicPartitionKey) -> None:
        self.generation[tp] = self.tracker.assign(tp)
        # A new owner starts from the committed offset.
        self.position[tp] = self.start[tp] = self.broker_committed[tp]
        self.deferred[tp], self.done[tp], self.taken[tp] = set(), set(), []


DeferringConsumer.TestCase.settings = settings(max_examples=300, stateful_step_count=60)
TestDeferringConsumer = DeferringConsumer.TestCase
