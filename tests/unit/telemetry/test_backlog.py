from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.telemetry.backlog import (
    RollingMean,
    ThroughputWindow,
    WorkerBacklog,
    backlog_estimate,
    pixel_steps,
)


def test_pixel_steps_is_the_product() -> None:
    assert pixel_steps(30, 512, 512, 2) == 30 * 512 * 512 * 2


def test_pixel_steps_refuses_negative_fields() -> None:
    with pytest.raises(ValueError, match="width must be >= 0, got -8"):
        pixel_steps(30, -8, 512)


def test_estimate_divides_work_by_throughput_and_messages_by_rate() -> None:
    est = backlog_estimate(messages=100, pixel_steps_total=5e6, throughput=1e5, drain_rate=4.0)
    assert est.gpu_seconds == 50.0
    assert est.drain_seconds == 25.0


def test_estimate_without_measurements_says_unknown() -> None:
    est = backlog_estimate(messages=10, pixel_steps_total=1e6, throughput=None, drain_rate=None)
    assert est.gpu_seconds is None
    assert est.drain_seconds is None


def test_a_stalled_group_never_drains_and_an_empty_one_is_drained() -> None:
    stalled = backlog_estimate(messages=3, pixel_steps_total=1.0, throughput=1.0, drain_rate=0.0)
    assert stalled.drain_seconds == math.inf
    empty = backlog_estimate(messages=0, pixel_steps_total=0.0, throughput=None, drain_rate=0.0)
    assert empty.drain_seconds == 0.0


def test_negative_lag_is_refused() -> None:
    with pytest.raises(ValueError, match="messages must be >= 0"):
        backlog_estimate(messages=-1, pixel_steps_total=0, throughput=None, drain_rate=None)


@given(
    st.lists(
        st.tuples(st.floats(0, 1e9), st.floats(1e-3, 1e3)),
        min_size=1,
        max_size=50,
    )
)
def test_throughput_is_total_work_over_total_time(samples: list[tuple[float, float]]) -> None:
    window = ThroughputWindow(size=100)
    for work, seconds in samples:
        window.observe(work, seconds)
    total_work = sum(w for w, _ in samples)
    expected = total_work / sum(s for _, s in samples) if total_work > 0 else None
    assert window.throughput() == (pytest.approx(expected) if expected is not None else None)


def test_throughput_window_forgets_old_samples_and_ignores_zero_time() -> None:
    window = ThroughputWindow(size=2)
    window.observe(1000, 1.0)
    window.observe(10, 1.0)
    window.observe(10, 1.0)
    window.observe(10**9, 0.0)
    assert window.throughput() == 10.0


def test_rolling_mean() -> None:
    mean = RollingMean(size=2)
    assert mean.mean() is None
    for v in (1.0, 3.0, 5.0):
        mean.add(v)
    assert mean.mean() == 4.0
    with pytest.raises(ValueError, match="size must be > 0"):
        RollingMean(size=0)


def test_a_workers_backlog_is_its_lag_times_cost_over_throughput() -> None:
    backlog = WorkerBacklog()
    assert backlog.gpu_seconds() == 0.0  # no lag, nothing to do
    backlog.set_lag("t", 0, 10)
    assert backlog.gpu_seconds() is None  # neither cost nor speed measured yet
    backlog.consumed(100)
    backlog.consumed(300)
    backlog.generated(1000, 2.0)
    backlog.set_lag("t", 1, 10)
    assert backlog.gpu_seconds() == pytest.approx(20 * 200 / 500)
    backlog.forget("t", 0)
    assert backlog.gpu_seconds() == pytest.approx(10 * 200 / 500)
