"""FetchBuffer: bounded by records and bytes, order kept per partition, dropped by partition."""

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
        size_of=lambda r: r[2],
    )


def test_room_counts_records_and_stops_at_the_byte_bound() -> None:
    b = buffer(max_records=3, max_bytes=100)
    assert b.room() == 3
    b.extend([(0, 0, 10)])
    assert b.room() == 2 and b.bytes == 10
    b.extend([(0, 1, 95)])  # a poll may overshoot the byte bound by its last record
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
    b.extend(records)
    assert b.drop({("t", p) for p in dropped}) == sum(1 for r in records if r[0] in dropped)
    kept = [r for r in records if r[0] not in dropped]
    assert b.bytes == sum(r[2] for r in kept)
    assert b.take(limit) + b.take(len(kept)) == kept
    assert len(b) == 0 and b.bytes == 0


def test_below_half_is_what_resumes() -> None:
    b = buffer(max_records=4, max_bytes=1000)
    b.extend([(0, i, 1) for i in range(4)])
    assert not b.below_half()
    b.take(2)
    assert b.below_half()
