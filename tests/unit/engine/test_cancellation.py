"""Deadlines and cancellation: checked before a batch starts and between denoising steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.schedulers import SCHEDULERS
from streamgen.errors import DeadlineExpired, RequestCancelled
from streamgen.settings import EngineSettings
from tests.unit.engine.conftest import assert_same_images, request

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def clocked(tiny_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}), clock=lambda: NOW)


def test_expired_request_is_not_generated(clocked: DiffusionEngine) -> None:
    late = request("late", deadline=NOW - timedelta(seconds=1))
    fresh = request("fresh", deadline=NOW + timedelta(hours=1))
    late_outcome, fresh_outcome = clocked.generate([late, fresh])
    assert isinstance(late_outcome.error, DeadlineExpired)
    assert late_outcome.error.code == "DEADLINE_EXPIRED" and not late_outcome.error.retryable
    assert late_outcome.error.stage == "generate"
    assert fresh_outcome.ok and fresh_outcome.batch_size == 1  # the late one took no slot


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_cancelled_mid_loop_leaves_the_others_unchanged(
    clocked: DiffusionEngine, scheduler: str
) -> None:
    batch = [
        request("a", seed=1, scheduler=scheduler, steps=4),
        request("b", seed=2, scheduler=scheduler, steps=4, num_images=2),
        request("c", seed=3, scheduler=scheduler, steps=4),
    ]
    asked: dict[str, int] = {}

    def cancelled(r: GenerationRequest) -> bool:
        asked[r.request_id] = asked.get(r.request_id, 0) + 1
        # Asked before the batch, then before each step: True on the 4th ask drops it
        # after two of its four steps.
        return r.request_id == "b" and asked[r.request_id] > 3

    outcomes = clocked.generate(batch, cancelled=cancelled)
    assert isinstance(outcomes[1].error, RequestCancelled)
    assert outcomes[1].error.code == "CANCELLED"
    assert asked["b"] == 4  # never asked again once dropped
    for i in (0, 2):
        assert_same_images(outcomes[i], clocked.generate([batch[i]])[0])


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_batch_whose_every_row_leaves_mid_loop_ends_cancelled(
    clocked: DiffusionEngine, scheduler: str
) -> None:
    """Every row leaving at one step (all cancelled, all expired, all of a revoked partition)
    once raised IndexError selecting no rows of a multistep scheduler's saved state: the batch
    then failed as GENERATION_ERROR and, with one attempt, was dead-lettered (found from the
    outside, issue 22's stranger test)."""
    batch = [request(r, seed=i, scheduler=scheduler, steps=4) for i, r in enumerate("ab")]
    asked: dict[str, int] = {}

    def cancelled(r: GenerationRequest) -> bool:
        asked[r.request_id] = asked.get(r.request_id, 0) + 1
        return asked[r.request_id] > 3  # both leave together after two steps

    outcomes = clocked.generate(batch, cancelled=cancelled)
    assert [type(o.error) for o in outcomes] == [RequestCancelled, RequestCancelled]
    assert all(o.error is not None and o.error.code == "CANCELLED" for o in outcomes)


def test_cancelled_before_start(clocked: DiffusionEngine) -> None:
    (outcome,) = clocked.generate([request("x")], cancelled=lambda r: True)
    assert isinstance(outcome.error, RequestCancelled) and outcome.images == ()
