"""StallWatch: owned partitions without progress past the timeout are suspects; a report is
made once per stall and ends when the partition moves or leaves."""

from __future__ import annotations

import pytest

from streamgen.worker.stalls import StallWatch

A, B = ("t", 0), ("t", 1)


def test_only_owned_partitions_without_progress_past_the_timeout_are_suspects() -> None:
    watch = StallWatch(timeout_s=60.0)
    watch.own([A, B], now=0.0)
    watch.moved(B, now=50.0)
    assert watch.suspects(now=60.0) == []  # exactly the timeout is not past it
    assert watch.suspects(now=61.0) == [A]
    assert watch.still(A, now=61.0) == 61.0


def test_a_stall_is_reported_once_and_ends_when_the_partition_moves() -> None:
    watch = StallWatch(timeout_s=1.0)
    watch.own([A], now=0.0)
    assert watch.report(A) and not watch.report(A)  # the log line is said once
    assert watch.moved(A, now=5.0)  # moving again ends the report
    assert not watch.moved(A, now=6.0)
    assert watch.suspects(now=6.5) == []


def test_a_partition_that_leaves_ends_its_report_and_a_new_one_starts_fresh() -> None:
    watch = StallWatch(timeout_s=1.0)
    watch.own([A, B], now=0.0)
    watch.report(A)
    assert watch.own([B], now=10.0) == [A]
    assert watch.own([A, B], now=10.0) == []
    assert watch.suspects(now=10.5) == [B]  # A counts from its new assignment
    assert sorted(watch.suspects(now=11.5)) == [A, B]


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stall timeout"):
        StallWatch(timeout_s=0.0)


def test_an_idle_partition_is_not_asked_about_again_for_another_timeout() -> None:
    watch = StallWatch(timeout_s=1.0)
    watch.own([A], now=0.0)
    assert watch.suspects(now=2.0) == [A]
    assert not watch.clear(A, now=2.0)  # probed: nothing waits
    assert watch.suspects(now=2.5) == []
    watch.report(A)
    assert watch.clear(A, now=3.0)  # a reported stall whose records were then taken ends


def test_records_arriving_on_a_partition_found_idle_start_its_clock_when_first_seen() -> None:
    """Idle for minutes, then a burst the window holds back: not a stall of minutes."""
    watch = StallWatch(timeout_s=60.0)
    watch.own([A], now=0.0)
    assert watch.suspects(now=61.0) == [A]
    watch.clear(A, now=61.0)  # probed: idle
    assert watch.suspects(now=130.0) == [A]  # records arrived at 125 and wait
    assert not watch.waiting(A, now=130.0)  # not reported: they waited 5 s at most
    assert watch.suspects(now=189.0) == []
    assert watch.suspects(now=191.0) == [A]
    assert watch.waiting(A, now=191.0)  # still waiting 61 s after first seen: a stall
    assert watch.still(A, now=191.0) == 61.0


def test_a_partition_that_moved_since_its_idle_probe_counts_from_its_last_movement() -> None:
    watch = StallWatch(timeout_s=60.0)
    watch.own([A], now=0.0)
    watch.clear(A, now=61.0)
    watch.moved(A, now=70.0)  # records came and were fetched: no longer known idle
    assert watch.suspects(now=131.0) == [A]
    assert watch.waiting(A, now=131.0)  # records waiting since the last movement at most
    assert watch.still(A, now=131.0) == 61.0


def test_a_partition_newly_owned_with_a_backlog_counts_from_its_assignment() -> None:
    """The stalled-partition defect of issue 22: assigned, records waiting, never fetched."""
    watch = StallWatch(timeout_s=60.0)
    watch.own([A], now=0.0)
    assert watch.suspects(now=61.0) == [A]
    assert watch.waiting(A, now=61.0)
