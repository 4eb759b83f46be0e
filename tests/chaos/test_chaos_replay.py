"""Scenario 9: dead letters replayed with `streamgen replay` once their cause is fixed end with
exactly one SUCCEEDED outcome per request."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import replace

import pytest

from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, judge, settle
from tests.integration.worker.conftest import settings_env, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SETTLE_TIMEOUT_S = 120.0


def test_scenario_9_replayed_dead_letters_end_with_one_success_each(chaos: ChaosRun) -> None:
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    good = chaos.requests(8)
    # The cause: requests for a model the fleet does not serve yet (dead-lettered at validate).
    early = [replace(r, request_id=f"{r.request_id}-v2", model="tiny-v2") for r in good[:4]]
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        load.publish([*good, *early])
        before = chaos.spawn("w1")
        settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S)
        assert before.terminate() == 0, before.tail()
        verdict = judge(settings, load.acked, outputs, sampler.samples)
        assert verdict.dead_letters == len(early)
        # The fix: the fleet now serves the model. Then every dead letter goes back.
        models = {**settings.engine.models, "tiny-v2": settings.engine.models["tiny"]}
        fixed = replace(settings, engine=replace(settings.engine, models=models))
        after = chaos.spawn("w2", fixed)
        replay = subprocess.run(
            [sys.executable, "-m", "streamgen", "replay", "--group", f"replay-{uuid.uuid4().hex}"],
            env={**os.environ, **settings_env(settings)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert replay.returncode == 0, replay.stderr[-3000:]
        assert f"replayed {len(early)}" in replay.stdout, replay.stdout

        def all_succeeded() -> bool:
            outputs.refresh()
            return {r.request_id for r in outputs.results() if r.status == "SUCCEEDED"} >= {
                r.request_id for r in early
            }

        assert wait_until(all_succeeded, SETTLE_TIMEOUT_S), after.tail()
        assert after.terminate() == 0, after.tail()
    last = {r.request_id: r.status for r in outputs.results()}
    assert set(last.values()) == {"SUCCEEDED"}, "a request's final outcome is not SUCCEEDED"
    successes = Counter(r.request_id for r in outputs.results() if r.status == "SUCCEEDED")
    assert successes == Counter({r.request_id: 1 for r in [*good, *early]})
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("9 dead-letter replay", verdict, faults=len(early), recovery_s=[],
                   dead_letters_expected=len(early))  # fmt: skip
    verdict.assert_safe(max_duplicates=len(early))  # a FAILED then a SUCCEEDED per replay
