"""How much a share-mode round takes: what fits in the lock less the margin, in batches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamgen.settings import Settings, WorkerSettings
from streamgen.worker.share_startup import ShareGroupFacts, records_per_round, round_budget_s

FACTS = ShareGroupFacts(lock_s=30.0, broker_delivery_limit=5)


def settings(**worker: float) -> Settings:
    return Settings(worker=replace(WorkerSettings(), **worker))


@pytest.mark.parametrize(
    ("worker", "batch_size", "expected"),
    [
        # (30 - 5) / 5 = 5 batches of 4, under the window of 64
        ({"share_lock_margin_s": 5.0, "share_batch_s": 5.0}, 4, 20),
        # 5 batches of 16 = 80: the window (max_in_flight) is the bound
        ({"share_lock_margin_s": 5.0, "share_batch_s": 5.0}, 16, 64),
        # 24 s / 10 s: 2 whole batches, never a partial one that would overrun
        ({"share_lock_margin_s": 6.0, "share_batch_s": 10.0}, 4, 8),
        # engine.max_batch_size 0 (probe): one request a batch
        ({"share_lock_margin_s": 5.0, "share_batch_s": 5.0}, 0, 5),
        # no whole batch fits (start-up refuses this, exit 4): still one record, never zero
        ({"share_lock_margin_s": 5.0, "share_batch_s": 30.0}, 4, 1),
    ],
)
def test_a_round_takes_the_batches_that_fit_in_the_lock(
    worker: dict[str, float], batch_size: int, expected: int
) -> None:
    assert records_per_round(settings(**worker), FACTS, batch_size) == expected


def test_the_round_budget_is_the_lock_less_the_margin() -> None:
    assert round_budget_s(settings(share_lock_margin_s=7.5), FACTS) == 22.5
