"""The intake-gap figures of the pipeline benchmark: pure arithmetic over event times."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.gaps import IntakeGaps, percentile

EVENTS = st.lists(
    st.tuples(st.sampled_from(["record", "fetch", "resume"]), st.floats(0, 1, allow_nan=False)),
    max_size=40,
)


@given(EVENTS)
def test_gaps_match_a_direct_reading_of_the_timeline(events: list[tuple[str, float]]) -> None:
    gaps = IntakeGaps()
    feed = {"record": gaps.received, "fetch": gaps.fetched, "resume": gaps.resumed}
    now = 0.0
    timeline = []
    for kind, step in events:
        now += step
        timeline.append((kind, now))
        feed[kind](now)
    records = [t for kind, t in timeline if kind == "record"]
    assert gaps.record_gaps == [b - a for a, b in itertools.pairwise(records)]
    # A resume gap runs from the first resume since the last fetch to the next fetch.
    expected, pending = [], None
    for kind, t in timeline:
        if kind == "resume" and pending is None:
            pending = t
        elif kind == "fetch" and pending is not None:
            expected.append(t - pending)
            pending = None
    assert gaps.resume_gaps == expected
    summary = gaps.as_dict()
    assert summary["resumes"] == len(expected)
    assert summary["record_gaps_over_50ms"] == sum(1 for g in gaps.record_gaps if g * 1000 > 50)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1), st.floats(0, 100))
def test_percentile_is_a_member_with_enough_values_at_or_below_it(
    values: list[float], p: float
) -> None:
    found = percentile(values, p)
    assert found in values
    assert sum(1 for v in values if v <= found) >= p / 100 * len(values)


def test_percentile_of_nothing_is_nan_and_ranks_are_nearest_rank() -> None:
    assert math.isnan(percentile([], 99))
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 99) == 4.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0) == 1.0
