"""A share round's feed: everything its poll lent is kept and started as the window and the
lock allow, nearest the delivery limit first; nothing is started once no batch fits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.worker.share_feed import FeedLimits, RoundFeed

LIMITS = FeedLimits(window=8, batch_size=4, batch_s=5.0)


def feed(counts: list[int], deadline: float = 25.0, limits: FeedLimits = LIMITS) -> RoundFeed[int]:
    """Records are their index; ``counts[i]`` is record i's delivery count."""
    return RoundFeed(range(len(counts)), lambda i: counts[i], limits, deadline)


def test_the_highest_delivery_count_goes_first_then_the_poll_order() -> None:
    f = feed([1, 3, 1, 2, 3, 1])
    assert f.take(0, now=0.0) == [1, 4, 3, 0, 2, 5]


def test_the_window_bounds_what_is_started_at_once() -> None:
    f = feed([1] * 20)
    assert f.take(0, now=0.0) == list(range(8))
    assert f.take(8, now=1.0) == []  # nothing durable yet
    assert f.take(5, now=2.0) == [8, 9, 10]  # three became durable
    assert len(f) == 9


def test_only_the_batches_that_fit_before_the_deadline_start() -> None:
    f = feed([1] * 20)
    # 12 s left: 2 batches of 4 fit; 3 records are still ahead of the new ones
    assert f.room(3, now=13.0) == 5
    assert f.room(0, now=20.5) == 0 and f.too_late(20.5)
    assert not f.too_late(20.0) and f.take(0, now=20.0) == [0, 1, 2, 3]


def test_beyond_is_what_the_round_cannot_count_on_starting_the_lowest_counts_last() -> None:
    f = feed([1] * 30 + [2])
    # 25 s: 5 batches of 4 fit, more than the window: 20 kept, the record delivered twice first
    assert f.beyond(now=0.0) == list(range(19, 30))
    assert len(f) == 20 and f.take(0, now=0.0)[0] == 30
    # 7 s left: one batch of 4 fits, but the window (8) is always kept
    g = feed([1] * 12)
    assert g.beyond(now=18.0) == [8, 9, 10, 11] and len(g) == 8
    assert feed([1] * 5).beyond(now=0.0) == []


def test_rest_empties_the_feed() -> None:
    f = feed([1, 2, 1])
    assert f.rest() == [1, 0, 2]
    assert len(f) == 0 and f.take(0, now=0.0) == []


def test_a_feed_without_a_window_or_a_batch_time_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        feed([1], limits=FeedLimits(window=0, batch_size=4, batch_s=5.0))
    with pytest.raises(ValueError, match="batch time"):
        feed([1], limits=FeedLimits(window=4, batch_size=4, batch_s=0.0))


@given(
    counts=st.lists(st.integers(1, 5), max_size=60),
    steps=st.lists(st.tuples(st.integers(0, 8), st.floats(0.0, 30.0)), max_size=40),
)
def test_every_record_is_started_or_left_once_and_never_past_what_fits(
    counts: list[int], steps: list[tuple[int, float]]
) -> None:
    f = feed(counts)
    started: list[int] = []
    for unfinished, now in sorted(steps, key=lambda s: s[1]):
        taken = f.take(unfinished, now)
        assert unfinished + len(taken) <= max(unfinished, LIMITS.window)
        if taken:  # what is ahead plus what starts fits in the batches left before the deadline
            batches_left = int((25.0 - now) // LIMITS.batch_s)
            assert unfinished + len(taken) <= batches_left * LIMITS.batch_size
        started += taken
    left = f.rest()
    assert sorted(started + left) == list(range(len(counts)))
    order = started + left
    assert [counts[i] for i in order] == sorted(counts, reverse=True)
