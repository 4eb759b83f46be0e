"""The share benchmark's arithmetic: lost and duplicated results, throughput over the read
window, speed-ups over the smallest fleet, latency percentiles."""

from __future__ import annotations

import pytest

from benchmarks.share_report import delivery_check, latency_summary, speedups, throughput


def test_delivery_check_counts_lost_failed_duplicated_and_foreign() -> None:
    read = {"a": [1.0], "b": [1.0, 2.0], "d": [2.5], "z": [3.0]}
    status = {"a": "SUCCEEDED", "b": "SUCCEEDED", "d": "FAILED", "z": "SUCCEEDED"}
    assert delivery_check(["a", "b", "c", "d"], read, status) == {
        "sent": 4,
        "read": 5,
        "lost": 1,  # c
        "failed": 1,  # d: a result, but dead-lettered
        "duplicated": 1,  # b, redone
        "foreign": 1,  # z, not this run's
    }


def test_delivery_check_of_a_clean_run() -> None:
    check = delivery_check(["a", "b"], {"a": [1.0], "b": [2.0]}, dict.fromkeys("ab", "SUCCEEDED"))
    assert check["lost"] == check["failed"] == check["duplicated"] == check["foreign"] == 0


def test_throughput_is_every_result_over_the_window_from_publishing() -> None:
    # 16 results in batches of 4, every 0.5 s after publishing at t=10: 8/s, not 10/s.
    reads = [10.0 + 0.5 * (1 + i // 4) for i in range(16)]
    assert throughput(reads, published_at=10.0) == {
        "results": 16,
        "seconds": 2.0,
        "requests_per_s": 8.0,
    }


@pytest.mark.parametrize(("reads", "published_at"), [([], 0.0), ([1.0], 1.0), ([1.0], 2.0)])
def test_throughput_needs_a_window(reads: list[float], published_at: float) -> None:
    with pytest.raises(ValueError):
        throughput(reads, published_at)


def test_speedups_are_over_the_smallest_fleet() -> None:
    assert speedups({4: 30.0, 1: 8.0, 2: 16.0}) == {1: 1.0, 2: 2.0, 4: 3.75}
    assert speedups({}) == {}
    with pytest.raises(ValueError):
        speedups({1: 0.0, 2: 4.0})


def test_latency_summary_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 21)]  # 1..20
    assert latency_summary(values) == {
        "count": 20,
        "p50": 10.0,
        "p95": 19.0,
        "p99": 20.0,
        "max": 20.0,
    }
