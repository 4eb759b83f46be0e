"""CUDA-graph buckets: the smallest bucket that holds a batch; padding never reaches a result."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.engine.buckets import batch_buckets, bucket_for

limits = st.integers(min_value=1, max_value=256)


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
