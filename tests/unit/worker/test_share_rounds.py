"""How much a share-mode round takes: what fits in the lock less the margin, in batches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamgen.settings import Settings, WorkerSettings
from streamgen.worker.share_startup import (
    ShareGroupFacts,
    records_per_round,
    requeue_chunk,
    round_budget_s,
)

FACTS = ShareGroupFacts(lock_s=30.0, broker_delivery_limit=5)


def settings(**worker: float | bool) -> Settings:
    return Settings(worker=replace(WorkerSettings(), **worker))


@pytest.mark.parametrize(
    ("worker", "batch_size", "expected"),
    [
        # (30 - 5) / 5 = 5 batches of 4, under the window of 64
        ({"share_lock_margin_s": 5.0, "share_batch_s": 5.0}, 4, 20),
        # 5 batches of 16 = 80: the window is the bound, max_in_flight (64) less two requeue
        # chunks of 64 // 8
        ({"share_lock_margin_s": 5.0, "share_batch_s": 5.0}, 16, 48),
        # without requeues, all of max_in_flight
        ({"share_lock_margin_s": 5.0, "share_batch_s": 5.0, "share_requeue": False}, 16, 64),
        # 24 s / 10 s: 2 whole batches, never a partial one that would overrun
        ({"share_lock_margin_s": 6.0, "share_batch_s": 10.0}, 4, 8),
        # engine.max_batch_size 0 (probe): one request a batch
        ({"share_lock_margin_s": 5.0, "share_batch_s": 5.0}, 0, 5),
        # no whole batch fits (start-up refuses this, exit 4): still one record, never zero
        ({"share_lock_margin_s": 5.0, "share_batch_s": 30.0}, 4, 1),
    ],
)
def test_a_round_takes_the_batches_that_fit_in_the_lock(
    worker: dict[str, float | bool], batch_size: int, expected: int
) -> None:
    assert records_per_round(settings(**worker), FACTS, batch_size) == expected


@pytest.mark.parametrize("max_in_flight", [3, 4, 7, 8, 9, 16, 64, 100, 1000])
def test_a_window_and_two_requeue_chunks_stay_within_max_in_flight(max_in_flight: int) -> None:
    """DESIGN invariant 8: a crash redoes the started window and may serve twice the requests
    of two requeue chunks; together at most max_in_flight."""
    s = settings(max_in_flight=max_in_flight, share_batch_s=0.01)  # the lock is not the bound
    chunk = requeue_chunk(s)
    assert chunk >= 1
    assert records_per_round(s, FACTS, 1000) + 2 * chunk <= max_in_flight
    assert requeue_chunk(settings(max_in_flight=max_in_flight, share_requeue=False)) == 0


def test_the_round_budget_is_the_lock_less_the_margin() -> None:
    assert round_budget_s(settings(share_lock_margin_s=7.5), FACTS) == 22.5
