"""The batcher with priority lanes: the highest lane first, bulk rows fill its free places,
no lane starves and nothing is lost or taken twice."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.worker.batcher import MicroBatcher
from streamgen.worker.lane_scheduler import LaneScheduler

INTERACTIVE, BULK = 0, 1
SIZES = {"a": 4, "b": 2}


def make(shares: list[float], max_wait_s: float = 1.0) -> MicroBatcher[str, str]:
    return MicroBatcher(
        max_wait_s=max_wait_s, max_batch_size=SIZES.__getitem__, lanes=LaneScheduler(shares)
    )


def test_an_interactive_request_goes_before_a_ready_bulk_backlog_without_waiting_to_fill() -> None:
    b = make([0.5, 0.1])
    for i in range(12):
        b.add("a", f"bulk{i}", now=0.0, lane=BULK)
    b.add("b", "urgent", now=0.0, lane=INTERACTIVE)  # shape b: not full, not aged
    first = b.next_batch(now=0.0)
    assert first is not None and first.items == ("urgent",)
    second = b.next_batch(now=0.0)
    assert second is not None and second.items == ("bulk0", "bulk1", "bulk2", "bulk3")


def test_bulk_rows_of_the_same_shape_fill_an_interactive_batch() -> None:
    b = make([0.5, 0.1])
    for i in range(5):
        b.add("a", f"bulk{i}", now=0.0, lane=BULK)
    b.add("a", "urgent", now=0.5, lane=INTERACTIVE)
    batch = b.next_batch(now=0.5)
    assert batch is not None and batch.items == ("urgent", "bulk0", "bulk1", "bulk2")


def test_a_lane_index_outside_the_lanes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lane must be in 0\.\.1, got 2"):
        make([0.5, 0.1]).add("a", "x", now=0.0, lane=2)


def test_bulk_is_served_at_its_share_under_an_interactive_flood() -> None:
    """Interactive keeps a full batch waiting at every turn; bulk (share 0.2) still gets about
    one batch in five, so it never starves."""
    b = make([0.5, 0.2])
    for i in range(40):
        b.add("a", f"bulk{i}", now=0.0, lane=BULK)
    bulk_batches = 0
    for turn in range(50):
        for j in range(4):
            b.add("a", f"i{turn}.{j}", now=0.0, lane=INTERACTIVE)
        batch = b.next_batch(now=0.0)
        assert batch is not None
        bulk_batches += all(item.startswith("bulk") for item in batch.items)
    assert 9 <= bulk_batches <= 11


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([0, 1, 2]), st.integers(0, 3)),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(0, 3), max_size=60),
)
def test_every_item_comes_out_once_whatever_the_lanes(
    adds: list[tuple[str, int, int]], takes_between: list[int]
) -> None:
    b: MicroBatcher[str, int] = MicroBatcher(
        max_wait_s=0.5, max_batch_size=SIZES.__getitem__, lanes=LaneScheduler([0.3, 0.3, 0.3])
    )
    out: list[int] = []
    for n, (shape, lane, priority) in enumerate(adds):
        b.add(shape, n, now=n * 0.1, priority=priority, lane=lane)
        for _ in range(takes_between[n] if n < len(takes_between) else 0):
            batch = b.next_batch(now=n * 0.1)
            if batch is not None:
                assert len(batch.items) <= SIZES[batch.shape]
                out.extend(batch.items)
    b.flush()
    while (batch := b.next_batch(now=1e9)) is not None:
        out.extend(batch.items)
    assert sorted(out) == list(range(len(adds)))
    assert len(b) == 0
