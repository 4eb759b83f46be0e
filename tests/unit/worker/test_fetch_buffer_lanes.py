"""FetchBuffer with priority lanes: the highest lane's records are admitted first, lower lanes
leave the window's last places to it, and every lane gets its share of what is admitted."""

from __future__ import annotations

from streamgen.worker.fetch_buffer import FetchBuffer
from streamgen.worker.lane_scheduler import LaneScheduler

Record = tuple[str, int, int]  # (topic, partition, offset)
RANKS = {"interactive": 0, "bulk": 1}


def buffer(shares: list[float]) -> FetchBuffer[Record]:
    return FetchBuffer(
        max_records=100,
        max_bytes=10_000,
        partition_of=lambda r: (r[0], r[1]),
        offset_of=lambda r: r[2],
        size_of=lambda r: 1,
        lane_of=lambda tp: RANKS[tp[0]],
        lanes=LaneScheduler(shares),
    )


def test_an_interactive_record_is_admitted_before_a_buffered_bulk_backlog() -> None:
    b = buffer([0.5, 0.1])
    b.extend([("bulk", p, o) for o in range(10) for p in range(2)], share=50)
    b.extend([("interactive", 0, 0)], share=50)
    taken = b.take(3)
    assert taken[0] == ("interactive", 0, 0)
    assert taken[1:] == [("bulk", 0, 0), ("bulk", 1, 0)]  # round-robin within the lane


def test_lower_lanes_leave_the_reserve_to_the_highest() -> None:
    b = buffer([0.5, 0.1])
    b.extend([("bulk", 0, o) for o in range(10)], share=50)
    assert b.take(8, reserve=2) == [("bulk", 0, o) for o in range(6)]
    assert b.take(2, reserve=2) == []  # the window's last two places: interactive's only
    b.extend([("interactive", 0, 0), ("interactive", 0, 1)], share=50)
    assert b.take(2, reserve=2) == [("interactive", 0, 0), ("interactive", 0, 1)]


def test_bulk_gets_its_share_of_admissions_under_an_interactive_flood() -> None:
    b = buffer([0.5, 0.25])
    b.extend([("bulk", 0, o) for o in range(40)], share=50)
    b.extend([("interactive", 0, o) for o in range(40)], share=50)
    taken = b.take(40)
    bulk = sum(1 for r in taken if r[0] == "bulk")
    assert 9 <= bulk <= 10
    assert [r[2] for r in taken if r[0] == "bulk"] == list(range(bulk))  # order kept


def test_without_lanes_the_round_is_kept() -> None:
    b: FetchBuffer[Record] = FetchBuffer(
        max_records=100,
        max_bytes=10_000,
        partition_of=lambda r: (r[0], r[1]),
        offset_of=lambda r: r[2],
        size_of=lambda r: 1,
    )
    b.extend([("t", p, o) for p in range(2) for o in range(3)], share=50)
    assert b.take(4) == [("t", 0, 0), ("t", 1, 0), ("t", 0, 1), ("t", 1, 1)]


def test_bulk_held_back_by_the_reserve_still_earns_its_share_across_takes() -> None:
    """Each take leaves bulk 4 places before the reserve, fewer than the 20 records of
    interactive it takes to owe bulk (share 0.05) one: bulk must keep what it earned while the
    reserve held it back, or it would never be admitted under an interactive flood."""
    b = buffer([0.5, 0.05])
    b.extend([("bulk", 0, o) for o in range(50)], share=100)
    taken = []
    for turn in range(50):
        b.extend([("interactive", 0, turn * 8 + i) for i in range(8)], share=100)
        taken += b.take(8, reserve=4)
    bulk = sum(1 for r in taken if r[0] == "bulk")
    assert 18 <= bulk <= 21, bulk
