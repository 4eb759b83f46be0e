"""OffsetTracker: no interleaving of completions, revokes and re-assignments commits past an
unfinished offset, and nothing is committed for a partition that is not owned."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streamgen.worker.offsets import OffsetTracker, Ticket

TP = ("requests", 0)


def test_commit_point_is_contiguous_low_water_mark() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    tickets = [tracker.hand_out(TP, off) for off in (10, 11, 12, 15)]
    assert tracker.commit_point(TP) == 10
    tracker.complete(tickets[1])
    tracker.complete(tickets[3])
    assert tracker.commit_point(TP) == 10  # 10 is not durable yet
    tracker.complete(tickets[0])
    assert tracker.commit_point(TP) == 12
    tracker.complete(tickets[2])
    assert tracker.commit_point(TP) == 16  # gaps (13, 14: compacted) do not block
    tracker.committed(TP, 16)
    assert tracker.commit_point(TP) is None


def test_stale_completion_after_revoke_and_reassign_is_ignored() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    old = tracker.hand_out(TP, 5)
    tracker.revoke(TP)
    assert tracker.commit_points() == {}
    tracker.assign(TP)
    new = tracker.hand_out(TP, 5)
    assert tracker.complete(old) is False
    assert tracker.commit_point(TP) == 5
    assert tracker.complete(new) is True
    assert tracker.commit_point(TP) == 6


def test_offsets_must_increase_within_an_assignment() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    tracker.hand_out(TP, 3)
    with pytest.raises(ValueError, match="must increase"):
        tracker.hand_out(TP, 3)


def test_commits_only_move_forward_and_never_past_durable() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    t = tracker.hand_out(TP, 0)
    tracker.hand_out(TP, 1)
    tracker.complete(t)
    tracker.committed(TP, 1)
    with pytest.raises(ValueError, match="moved back"):
        tracker.committed(TP, 0)
    with pytest.raises(ValueError, match="past the durable mark"):
        tracker.committed(TP, 2)


def test_double_completion_is_a_bug() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    t = tracker.hand_out(TP, 0)
    tracker.complete(t)
    with pytest.raises(ValueError, match="completed twice"):
        tracker.complete(t)


def test_redelivered_offsets_are_recognised_per_generation() -> None:
    tracker = OffsetTracker()
    tracker.assign(TP)
    tracker.hand_out(TP, 4)
    tracker.hand_out(TP, 6)
    assert tracker.already_handed_out(TP, 4) and tracker.already_handed_out(TP, 6)
    assert not tracker.already_handed_out(TP, 7)
    tracker.assign(TP)  # a new generation starts over from the committed offset
    assert not tracker.already_handed_out(TP, 4)
    assert not tracker.already_handed_out(("requests", 9), 0)


def test_durable_work_stays_uncommitted_until_the_broker_confirms_a_commit() -> None:
    tracker = OffsetTracker()
    generation = tracker.assign(TP)
    tickets = [tracker.hand_out(TP, off) for off in (0, 1, 2, 5)]
    for ticket in tickets[:3]:
        tracker.complete(ticket)
    assert tracker.outstanding() == 1
    assert tracker.uncommitted() == 4  # durable, but a crash now would redo them all
    assert tracker.confirm(TP, 3, generation)
    assert tracker.uncommitted(TP) == 1
    tracker.revoke(TP)
    assert tracker.uncommitted() == 0


def test_hand_out_requires_assignment() -> None:
    with pytest.raises(KeyError):
        OffsetTracker().hand_out(TP, 0)


PARTITIONS = [("requests", 0), ("requests", 1), ("requests", 2)]


class TrackerModel(RuleBasedStateMachine):
    """Drives the tracker like a consumer would, with an independent record of the truth."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = OffsetTracker()
        self.owned: dict[tuple[str, int], int] = {}  # tp -> generation
        self.broker_committed: dict[tuple[str, int], int] = dict.fromkeys(PARTITIONS, 0)
        self.next_offset: dict[tuple[str, int], int] = {}
        self.done: set[Ticket] = set()
        self.tickets: list[Ticket] = []  # every ticket ever handed out, stale ones included

    @rule(tp=st.sampled_from(PARTITIONS))
    def assign(self, tp: tuple[str, int]) -> None:
        self.owned[tp] = self.tracker.assign(tp)
        # A new owner resumes from the committed offset: work may be repeated, never skipped.
        self.next_offset[tp] = self.broker_committed[tp]

    @rule(tp=st.sampled_from(PARTITIONS), lost=st.booleans())
    def revoke(self, tp: tuple[str, int], lost: bool) -> None:
        if tp not in self.owned:
            return
        if not lost:
            self.commit_one(tp)
        self.tracker.revoke(tp)
        del self.owned[tp]

    @rule(tp=st.sampled_from(PARTITIONS), gap=st.integers(0, 2))
    def poll(self, tp: tuple[str, int], gap: int) -> None:
        if tp not in self.owned:
            return
        offset = self.next_offset[tp] + gap
        self.tickets.append(self.tracker.hand_out(tp, offset))
        self.next_offset[tp] = offset + 1

    @precondition(lambda self: self.tickets)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        ticket = data.draw(st.sampled_from(self.tickets))
        if ticket in self.done:
            return
        current = self.owned.get(ticket.tp) == ticket.generation
        assert self.tracker.complete(ticket) is current
        self.done.add(ticket)

    def commit_one(self, tp: tuple[str, int]) -> None:
        point = self.tracker.commit_point(tp)
        if point is None:
            return
        assert tp in self.owned, "commit point for a partition not owned"
        generation = self.owned[tp]
        for ticket in self.tickets:
            if ticket.tp == tp and ticket.generation == generation and ticket.offset < point:
                assert ticket in self.done, f"commit {point} passes unfinished {ticket}"
        self.tracker.committed(tp, point)
        self.broker_committed[tp] = point

    @rule()
    def commit(self) -> None:
        for tp in list(self.tracker.commit_points()):
            self.commit_one(tp)

    @invariant()
    def only_owned_partitions_have_commit_points(self) -> None:
        assert set(self.tracker.commit_points()) <= set(self.owned)

    @invariant()
    def uncommitted_is_what_a_new_owner_would_redo(self) -> None:
        # Every ticket of the current generation at or past the broker's committed offset:
        # exactly the records a new owner would be handed again after a crash now.
        for tp in PARTITIONS:
            redo = sum(
                1
                for t in self.tickets
                if t.tp == tp
                and self.owned.get(tp) == t.generation
                and t.offset >= self.broker_committed[tp]
            )
            assert self.tracker.uncommitted(tp) == redo
        assert self.tracker.uncommitted() == sum(self.tracker.uncommitted(tp) for tp in PARTITIONS)
        assert self.tracker.uncommitted() >= self.tracker.outstanding()


TestTrackerModel = TrackerModel.TestCase
