"""Scenarios 1 and 2: a worker killed with SIGKILL at random instants, and stopped with SIGTERM
in the middle of a batch. Workers are real `streamgen worker` processes."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.faults import kill_at_random
from tests.chaos.harness.figures import RunFigures, record
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, judge, settle
from tests.integration.worker.conftest import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SETTLE_TIMEOUT_S = 180.0
REQUESTS = 60  # streamed over ~20 s: the load outlasts both kills and restarts


def test_scenario_1_kill9_at_random_instants_loses_nothing(chaos: ChaosRun) -> None:
    kills = 2
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        load.stream(chaos.requests(REQUESTS), rate=3)
        worker = chaos.spawn("w1")
        for _ in range(kills):
            # Kill only once the worker is really working, at a random instant after that:
            # while batching, generating, storing, or between a result and its commit.
            seen = outputs.refresh()[0]

            def new_result(seen: int = seen) -> bool:
                return outputs.refresh()[0] > seen

            assert wait_until(new_result, 90), chaos.logs()
            kill_at_random(worker, chaos.rng, 0.0, 1.5)
            worker = chaos.spawn("w1")
        healed = time.monotonic()
        load.wait()
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S, since=healed)
        worker.wait_ready()
        assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record(
        RunFigures(
            scenario="1 kill -9",
            requests=verdict.requests,
            lost=len(verdict.lost),
            duplicates=verdict.duplicates,
            dead_letters_expected=0,
            dead_letters=verdict.dead_letters,
            faults=kills,
            recovery_s=[recovery],
        )
    )
    assert verdict.requests == REQUESTS and not load.failed
    assert verdict.dead_letters == 0
    verdict.assert_safe(max_duplicates=kills * settings.worker.max_in_flight)
