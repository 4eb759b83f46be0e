from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.ops.lag_report import (
    GroupLag,
    PartitionLag,
    committed_rate,
    format_duration,
    render_table,
    results_rate,
)


def row(partition: int = 0, **kw: object) -> PartitionLag:
    base: dict[str, object] = {
        "topic": "req",
        "partition": partition,
        "committed": 5,
        "log_start": 0,
        "log_end": 9,
    }
    base.update(kw)
    return PartitionLag(**base)  # type: ignore[arg-type]


@given(
    committed=st.one_of(st.none(), st.integers(0, 1000)),
    log_start=st.integers(0, 1000),
    extra=st.integers(0, 1000),
)
def test_lag_is_log_end_minus_resume_point(
    committed: int | None, log_start: int, extra: int
) -> None:
    log_end = log_start + extra
    r = row(committed=committed, log_start=log_start, log_end=log_end)
    resume = log_start if committed is None else max(committed, log_start)
    assert r.lag == max(log_end - resume, 0)
    assert 0 <= r.lag <= extra


def test_age_of_the_oldest_waiting_record() -> None:
    assert row(oldest_timestamp_ms=1_000).lag_seconds(61_000) == 60.0
    assert row(committed=9).lag_seconds(61_000) == 0.0
    assert row(oldest_timestamp_ms=None).lag_seconds(61_000) is None


def test_backlog_extrapolates_the_sampled_mean() -> None:
    r = row(committed=0, log_end=100, sampled=4, sampled_pixel_steps=400.0)
    assert r.pixel_steps_estimate == 100 * 100.0
    report = GroupLag("g", "req", 0, (r, row(1, committed=3, log_end=3)), throughput=50.0)
    assert report.backlog.gpu_seconds == 10_000 / 50


def test_an_unsampled_partition_with_lag_makes_the_backlog_unknown() -> None:
    report = GroupLag("g", "req", 0, (row(sampled=0),), throughput=50.0)
    assert report.backlog.gpu_seconds is None
    assert "could not be read" in render_table(report)


def test_committed_rate_between_two_snapshots() -> None:
    before = GroupLag("g", "req", 0, (row(0, committed=10), row(1, committed=None)))
    after = GroupLag("g", "req", 4_000, (row(0, committed=18), row(1, committed=4)))
    assert committed_rate(before, after) == (8 + 4) / 4
    assert committed_rate(after, before) is None


def test_results_rate_decays_when_the_fleet_goes_idle() -> None:
    now = 100_000
    assert results_rate([now - 10_000, now - 5_000], now) == 2 / 10
    assert results_rate([now - 120_000], now) == 0.0
    assert results_rate([], now) == 0.0


def test_json_has_no_infinity_and_says_stalled() -> None:
    report = GroupLag(
        "g", "req", 10_000, (row(sampled=1, sampled_pixel_steps=10.0),), drain_rate=0.0
    )
    data = report.to_json()
    assert data["drain_seconds"] is None and data["stalled"] is True
    assert data["total_lag"] == 4


def test_table_shows_every_partition_and_totals() -> None:
    report = GroupLag(
        "g",
        "req",
        70_000,
        (
            row(
                0,
                owner="w1@10.0.0.1",
                oldest_timestamp_ms=10_000,
                sampled=2,
                sampled_pixel_steps=2e6,
            ),
            row(1, committed=None, log_end=0),
        ),
        throughput=1e5,
        drain_rate=2.0,
        drain_rate_source="results",
    )
    text = render_table(report)
    lines = text.splitlines()
    assert lines[0].split() == [
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "LOG-END",
        "LAG",
        "OLDEST-WAITING",
        "OWNER",
    ]
    assert lines[1].split() == ["req", "0", "5", "9", "4", "1m00s", "w1@10.0.0.1"]
    assert lines[2].split() == ["req", "1", "-", "0", "0", "0s", "-"]
    assert "on req: total lag 4 messages" in text  # a lane's report names its topic
    assert "40.0 GPU-seconds" in text
    assert "drain: 2s at 2.00 msg/s (results)" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (math.inf, "never (not consuming)"),
        (5.4, "5s"),
        (125, "2m05s"),
        (3725, "1h02m05s"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
