"""Scenarios 3 and 4: the broker restarted under load; MinIO stopped, and MinIO answering slowly.

Infrastructure faults are transient by definition (DESIGN invariant 6): nothing may be
dead-lettered for them, nothing committed past them, and a worker that was never killed has
no reason to produce a single duplicate.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.faults import minio_slow, restart_broker
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, judge, settle
from tests.chaos.test_chaos_crashes import wait_for_new_result

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SETTLE_TIMEOUT_S = 180.0
# The issue asks for 30 s; CI uses less to stay in its budget, scripts/chaos uses 30.
MINIO_OUTAGE_S = float(os.environ.get("STREAMGEN_CHAOS_MINIO_OUTAGE_S", "10"))


def test_scenario_3_broker_restart_under_load_loses_nothing(chaos: ChaosRun) -> None:
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    count = 40
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        worker = chaos.spawn("w1")
        load.stream(chaos.requests(count), rate=4)
        wait_for_new_result(outputs, chaos)
        time.sleep(chaos.rng.uniform(0.0, 2.0))
        healed = restart_broker(chaos.stack, down_s=3.0)
        load.wait()
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S, since=healed)
        assert worker.alive(), worker.tail()
        assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("3 broker restart", verdict, faults=1, recovery_s=[recovery])
    assert verdict.requests == count and not load.failed
    assert verdict.dead_letters == 0, "a broker restart is transient: nothing is dead-lettered"
    verdict.assert_safe(max_duplicates=settings.worker.max_in_flight)


def test_scenario_4_minio_outage_dead_letters_nothing_and_commits_nothing_past_it(
    chaos: ChaosRun,
) -> None:
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    count = 30
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        worker = chaos.spawn("w1")
        load.stream(chaos.requests(count), rate=3)
        wait_for_new_result(outputs, chaos)
        chaos.stack.stop_minio()
        stopped = time.monotonic()
        try:
            time.sleep(MINIO_OUTAGE_S)
            # Nothing can become durable while the store is down, so no commit may move:
            # the sampler checks that on every sample, these lines on the whole outage.
            outputs.refresh()
            during = [s for s in sampler.samples if s.at > stopped + 1.0]
        finally:
            chaos.stack.start_minio()
        healed = time.monotonic()
        load.wait()
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S, since=healed)
        assert worker.terminate() == 0, worker.tail()
    assert during, "no committed offsets were sampled during the outage"
    assert all(s.committed == during[0].committed for s in during), "committed during outage"
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("4 MinIO outage", verdict, faults=1, recovery_s=[recovery])
    assert verdict.requests == count and verdict.dead_letters == 0
    verdict.assert_safe(max_duplicates=0)


def test_scenario_4_minio_answering_slowly_dead_letters_nothing(chaos: ChaosRun) -> None:
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    count = 30
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        worker = chaos.spawn("w1")
        load.stream(chaos.requests(count), rate=3)
        wait_for_new_result(outputs, chaos)
        healed = minio_slow(chaos.stack, stalls=3, stall_s=2.0, gap_s=1.0)
        load.wait()
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S, since=healed)
        assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("4 MinIO slow", verdict, faults=3, recovery_s=[recovery])
    assert verdict.requests == count and verdict.dead_letters == 0
    verdict.assert_safe(max_duplicates=0)
