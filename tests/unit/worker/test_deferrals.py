"""Deferrals: a tenant at its cap on requests in flight has its records set aside, in order,
and admitted as its requests finish; the window's last place is kept for the record that
holds a partition's commit point; revoked partitions' records are forgotten."""

from __future__ import annotations

import pytest

from streamgen.contracts.request import GenerationRequest
from streamgen.worker.deferrals import Deferrals, Deferred
from streamgen.worker.offsets import OffsetTracker, Ticket, TopicPartitionKey
from streamgen.worker.work_item import SourceRecord

P0, P1 = ("requests", 0), ("requests", 1)
BULK = ("requests.bulk", 0)


def record(tp: TopicPartitionKey, offset: int) -> SourceRecord:
    return SourceRecord(tp[0], tp[1], offset, None, b"", (), 0)


class Worker:
    """The loop's part: take records in order, set aside or hand out, finish tickets."""

    def __init__(self, caps: dict[str, int], **kwargs: int) -> None:
        self.tracker = OffsetTracker()
        for tp in (P0, P1, BULK):
            self.tracker.assign(tp)
        self.deferrals = Deferrals(
            self.tracker,
            lambda tenant: caps.get(tenant, 0),
            max_records=kwargs.pop("max_records", 100),
            lane_of=lambda tp: 1 if tp == BULK else 0,
            **kwargs,
        )
        self.tickets: dict[tuple[TopicPartitionKey, int], Ticket] = {}

    def take(self, tp: TopicPartitionKey, offset: int, tenant: str) -> bool:
        """True: handed out now; False: set aside."""
        request = GenerationRequest(request_id=f"{tp[1]}-{offset}", prompt="p", tenant=tenant)
        if self.deferrals.defer(record(tp, offset), request, span=None):
            return False
        self.hand_out(tp, offset, tenant)
        return True

    def hand_out(self, tp: TopicPartitionKey, offset: int, tenant: str) -> None:
        ticket = self.tracker.hand_out(tp, offset)
        self.tickets[(tp, offset)] = ticket
        self.deferrals.started(ticket, tenant)

    def release(self, room: int) -> list[tuple[TopicPartitionKey, int]]:
        out = self.deferrals.release(room)
        for entry in out:
            self.hand_out(*entry.key, entry.request.tenant)
        return [entry.key for entry in out]

    def finish(self, tp: TopicPartitionKey, offset: int) -> None:
        ticket = self.tickets.pop((tp, offset))
        self.deferrals.finished(ticket)
        self.tracker.complete(ticket)


def test_without_caps_nothing_is_set_aside() -> None:
    tracker = OffsetTracker()
    tracker.assign(P0)
    deferrals = Deferrals(tracker, None, max_records=10)
    request = GenerationRequest(request_id="a", prompt="p", tenant="flood")
    assert not deferrals.defer(record(P0, 0), request, span=None)
    assert deferrals.reserve() == 0 and deferrals.release(10) == []


def test_a_tenant_at_its_cap_waits_and_another_tenant_goes_past_it() -> None:
    worker = Worker({"flood": 2})
    assert [worker.take(P0, o, "flood") for o in range(4)] == [True, True, False, False]
    assert worker.take(P0, 4, "small")  # no cap: straight past the flood
    assert worker.deferrals.counts() == {"flood": 2}
    assert worker.deferrals.in_flight("flood") == 2
    assert worker.release(room=10) == []  # the flood is at its cap
    worker.finish(P0, 0)
    assert worker.release(room=10) == [(P0, 2)]  # the oldest first, one place freed
    worker.finish(P0, 1)
    worker.finish(P0, 2)
    assert worker.release(room=10) == [(P0, 3)]
    assert len(worker.deferrals) == 0 and worker.deferrals.reserve() == 0


def test_a_tenants_records_keep_their_order_while_some_are_set_aside() -> None:
    worker = Worker({"flood": 1})
    assert worker.take(P0, 0, "flood")
    assert not worker.take(P0, 1, "flood")
    worker.finish(P0, 0)
    # Room under the cap again, but an older record waits: this one goes behind it.
    assert not worker.take(P0, 2, "flood")
    assert worker.release(room=10) == [(P0, 1)]


def test_the_last_place_of_the_window_is_kept_while_records_are_set_aside() -> None:
    worker = Worker({"flood": 3})
    for offset in range(5):
        worker.take(P0, offset, "flood")
    assert worker.deferrals.counts() == {"flood": 2} and worker.deferrals.reserve() == 1
    worker.finish(P0, 1)
    worker.finish(P0, 2)
    # The cap allows two more, but of two places the last is kept for a record holding a
    # partition's commit point, and none does: P0@0 is unfinished below them.
    assert worker.release(room=2) == [(P0, 3)]
    assert worker.release(room=1) == []


def test_the_commit_holder_takes_the_last_place_whatever_its_tenants_cap() -> None:
    worker = Worker({"flood": 1})
    worker.take(P1, 0, "flood")  # the flood at its cap, on another partition
    worker.take(P0, 0, "small")
    assert not worker.take(P0, 1, "flood")
    worker.take(P0, 2, "small")
    assert worker.release(room=1) == []  # P0@0 holds P0's commit point, unfinished
    worker.finish(P0, 0)
    worker.finish(P0, 2)  # durable, but no commit may pass P0@1
    assert worker.tracker.commit_point(P0) == 1
    assert worker.release(room=2) == []  # room beyond the last place: the cap holds
    assert worker.release(room=1) == [(P0, 1)]  # window otherwise full: the holder goes
    assert worker.deferrals.in_flight("flood") == 2
    worker.finish(P0, 1)
    assert worker.tracker.commit_point(P0) == 3


def test_records_set_aside_in_a_lower_lane_leave_the_lanes_reserve() -> None:
    worker = Worker({"bulk": 1}, lane_reserve=2)
    worker.take(BULK, 0, "bulk")
    worker.take(BULK, 1, "bulk")
    worker.take(P0, 0, "bulk")  # the same tenant in the highest lane: behind its own
    worker.finish(BULK, 0)
    # 3 places: the last is kept for a commit holder, and the bulk lane leaves 2 to the
    # highest lane: BULK@1 waits. It holds BULK's commit point, but the window is not full.
    assert worker.release(room=3) == []
    assert worker.release(room=4) == [(BULK, 1)]


def test_a_revoked_partitions_records_and_requests_are_forgotten() -> None:
    worker = Worker({"flood": 1})
    worker.take(P1, 0, "flood")
    worker.take(P1, 1, "flood")
    worker.take(P0, 0, "flood")
    dropped = worker.deferrals.drop({P1})
    assert [d.key for d in dropped] == [(P1, 1)]
    assert worker.deferrals.in_flight("flood") == 0  # P1@0 no longer counts
    assert worker.release(room=10) == [(P0, 0)]


def test_once_a_tenants_records_set_aside_are_gone_its_next_one_goes_straight_in() -> None:
    worker = Worker({"flood": 1})
    worker.take(P1, 0, "flood")
    assert not worker.take(P1, 1, "flood")
    worker.deferrals.drop({P1})
    assert worker.take(P0, 0, "flood")  # nothing of the flood is waiting or in flight


def test_at_most_max_records_are_set_aside_and_each_partition_counts_its_own() -> None:
    worker = Worker({"flood": 1}, max_records=3)
    for offset in range(3):
        worker.take(P0, offset, "flood")
    worker.take(P1, 0, "flood")
    assert worker.deferrals.room() == 0
    # What the stall watchdog counts as waiting, besides the fetch buffer's records.
    assert (worker.deferrals.count(P0), worker.deferrals.count(P1)) == (2, 1)
    worker.deferrals.drop({P1})
    assert (worker.deferrals.count(P1), worker.deferrals.room()) == (0, 1)


@pytest.mark.parametrize("max_records", [0, -1])
def test_a_store_with_no_room_is_refused(max_records: int) -> None:
    with pytest.raises(ValueError, match="max_records"):
        Deferrals(OffsetTracker(), None, max_records=max_records)


def test_a_deferred_record_says_where_it_came_from() -> None:
    entry = Deferred(record(P1, 7), GenerationRequest(request_id="a", prompt="p"), span=None)
    assert entry.key == (P1, 7)
