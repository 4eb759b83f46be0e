"""FetchBuffer: bounded by records and bytes, order kept per partition, dropped by partition,
each partition held to its share and taken round-robin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.worker.fetch_buffer import FetchBuffer

Record = tuple[int, int, int]  # (partition, offset, size)


def buffer(max_records: int = 10, max_bytes: int = 1000) -> FetchBuffer[Record]:
    return FetchBuffer(
        max_records=max_records,
        max_bytes=max_bytes,
        partition_of=lambda r: ("t", r[0]),
        offset_of=lambda r: r[1],
        size_of=lambda r: r[2],
    )


def test_room_counts_records_and_stops_at_the_byte_bound() -> None:
    b = buffer(max_records=3, max_bytes=100)
    assert b.room() == 3
    b.extend([(0, 0, 10)], share=10)
    assert b.room() == 2 and b.bytes == 10
    b.extend([(0, 1, 95)], share=10)  # a poll may overshoot the byte bound by its last record
    assert b.room() == 0 and b.full()
    assert b.take(5) == [(0, 0, 10), (0, 1, 95)]
    assert b.room() == 3 and b.bytes == 0


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_records"):
        buffer(max_records=0)


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50)), max_size=60),
    st.sets(st.integers(0, 3)),
    st.integers(0, 70),
)
def test_order_per_partition_is_kept_through_drops_and_takes(
    polled: list[tuple[int, int]], dropped: set[int], limit: int
) -> None:
    b = buffer(max_records=1000, max_bytes=10**9)
    records = [(p, offset, size) for offset, (p, size) in enumerate(polled)]
    b.extend(records, share=1000)
    assert b.drop({("t", p) for p in dropped}) == sum(1 for r in records if r[0] in dropped)
    kept = [r for r in records if r[0] not in dropped]
    assert b.bytes == sum(r[2] for r in kept)
    taken = b.take(limit) + b.take(len(kept))
    assert sorted(taken) == sorted(kept)
    for p in range(4):
        assert [r for r in taken if r[0] == p] == [r for r in kept if r[0] == p]
    assert len(b) == 0 and b.bytes == 0


def test_below_half_is_what_resumes() -> None:
    b = buffer(max_records=4, max_bytes=1000)
    b.extend([(0, i, 1) for i in range(4)], share=4)
    assert not b.below_half()
    b.take(2)
    assert b.below_half()


def test_a_backlog_that_arrives_one_partition_at_a_time_is_taken_round_robin() -> None:
    # librdkafka's order for a backlog: a whole fetch of partition 0, then of 1, then of 2.
    b = buffer(max_records=6, max_bytes=10**6)
    held = b.extend([(p, o, 1) for p in range(3) for o in range(10)], share=b.share(3))
    assert held == {("t", 0): 2, ("t", 1): 2, ("t", 2): 2}  # each keeps its share of 2
    assert b.take(4) == [(0, 0, 1), (1, 0, 1), (2, 0, 1), (0, 1, 1)]
    assert b.take(10) == [(1, 1, 1), (2, 1, 1)]


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9)), max_size=80),
    st.integers(1, 12),
)
def test_a_held_partition_is_rewound_to_its_first_record_dropped_so_none_is_skipped(
    polled: list[tuple[int, int]], share: int
) -> None:
    # Offsets per partition arrive in order, as a consumer delivers them; some polls bring
    # records of a partition already held (prefetched before its pause took effect).
    b = buffer(max_records=10**6, max_bytes=10**9)
    next_offset: dict[int, int] = {}
    rewinds: dict[tuple[str, int], int] = {}
    for p, size in polled:
        offset = next_offset.get(p, 0)
        next_offset[p] = offset + 1
        for tp, at in b.extend([(p, offset, size)], share).items():
            assert tp not in rewinds
            rewinds[tp] = at
    assert b.held() == rewinds
    kept = b.take(len(b))
    for p, end in next_offset.items():
        mine = [r[1] for r in kept if r[0] == p]
        resume_at = rewinds.get(("t", p), end)
        # What is kept and what is fetched again from the rewind offset is every offset.
        assert mine == list(range(resume_at)) and len(mine) <= share


def test_a_held_partition_is_releasable_at_half_its_share_and_drop_forgets_the_hold() -> None:
    b = buffer(max_records=100, max_bytes=10**6)
    assert b.extend([(0, o, 1) for o in range(6)], share=4) == {("t", 0): 4}
    assert b.releasable(4) == []
    b.take(2)
    assert b.releasable(4) == [("t", 0)]
    b.release(("t", 0))
    assert b.held() == {}
    b.extend([(1, o, 1) for o in range(6)], share=4)
    assert b.drop({("t", 1)}) == 4 and b.held() == {}
