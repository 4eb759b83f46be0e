"""CUDA-graph buckets: the smallest bucket that holds a batch; padding never reaches a result."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.engine.buckets import PaddingPlan, batch_buckets, bucket_for, pad, unpad

limits = st.integers(min_value=1, max_value=256)


@st.composite
def plans(draw: st.DrawFn) -> PaddingPlan:
    """A limit, a batch size up to it, and the plan that runs the batch in its bucket."""
    limit = draw(limits)
    return PaddingPlan.for_rows(
        draw(st.integers(min_value=1, max_value=limit)), batch_buckets(limit)
    )


@given(limits)
def test_buckets_are_the_powers_of_two_below_the_limit_then_the_limit(limit: int) -> None:
    buckets = batch_buckets(limit)
    assert buckets[0] == 1 and buckets[-1] == limit
    assert list(buckets) == sorted(set(buckets))
    assert all(b == 2**i for i, b in enumerate(buckets[:-1]))
    assert len(buckets) <= limit.bit_length() + 1


@given(limits, st.data())
def test_every_batch_size_maps_to_the_smallest_bucket_that_holds_it(
    limit: int, data: st.DataObject
) -> None:
    buckets = batch_buckets(limit)
    rows = data.draw(st.integers(min_value=1, max_value=limit))
    bucket = bucket_for(rows, buckets)
    assert bucket in buckets and bucket >= rows
    assert all(b < rows for b in buckets if b < bucket)
    # Padding wastes less than half the bucket (except that 1 row is never padded).
    assert bucket < 2 * rows or bucket == 1


def test_a_batch_larger_than_every_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="exceed"):
        bucket_for(9, batch_buckets(8))
    with pytest.raises(ValueError):
        bucket_for(0, batch_buckets(8))
    with pytest.raises(ValueError):
        batch_buckets(0)


@given(plans())
def test_padded_rows_are_dropped_and_real_rows_keep_their_order_and_generators(
    plan: PaddingPlan,
) -> None:
    rows = plan.rows
    # A row is (its index, its own generator); the filler is no request's row.
    real = [(i, object()) for i in range(rows)]
    filler = (-1, object())
    padded = pad(real, plan, filler)
    assert len(padded) == plan.bucket
    assert padded[:rows] == real and padded[rows:] == [filler] * plan.filler
    # Whatever the graph computes for each row position, only the real rows' outputs come back.
    outputs = [("out", row) for row in padded]
    kept = unpad(outputs, plan)
    assert kept == [("out", row) for row in real]
    assert all(row[1] is original[1] for (_, row), original in zip(kept, real, strict=True))
    assert ("out", filler) not in kept


@given(plans())
def test_guidance_halves_each_hold_the_real_rows_at_the_start(plan: PaddingPlan) -> None:
    rows = plan.rows
    negatives, positives = plan.halves()
    layout = list(range(2 * plan.bucket))
    assert layout[negatives] == list(range(rows))
    assert layout[positives] == list(range(plan.bucket, plan.bucket + rows))


def test_pad_and_unpad_check_their_plan() -> None:
    plan = PaddingPlan(3, 4)
    with pytest.raises(ValueError):
        pad([1, 2], plan, 0)
    with pytest.raises(ValueError):
        unpad([1, 2, 3], plan)
