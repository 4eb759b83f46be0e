"""Scenarios 3 and 4: the broker restarted under load; MinIO stopped, and MinIO answering slowly.

Infrastructure faults are transient by definition (DESIGN invariant 6): nothing may be
dead-lettered for them, nothing committed past them, and a worker that was never killed has
no reason to produce a single duplicate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.faults import minio_slow, restart_broker
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSample, CommitSampler, Verdict, judge, settle
from tests.chaos.test_chaos_crashes import wait_for_new_result

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SETTLE_TIMEOUT_S = 180.0
# The issue asks for 30 s; CI uses less to stay in its budget, scripts/chaos uses 30.
MINIO_OUTAGE_S = float(os.environ.get("STREAMGEN_CHAOS_MINIO_OUTAGE_S", "10"))


def _through_fault(
    chaos: ChaosRun, count: int, rate: float, fault: Callable[[CommitSampler], float]
) -> tuple[Verdict, float]:
    """One worker under a stream of ``count`` requests; once it has produced, ``fault`` runs
    (given the commit sampler) and returns when it healed. The verdict, and the recovery time
    from the healing to every record settled."""
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        worker = chaos.spawn("w1")
        load.stream(chaos.requests(count), rate=rate)
        wait_for_new_result(outputs, chaos)
        healed = fault(sampler)
        load.wait()
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S, since=healed)
        assert worker.alive(), worker.tail()
        assert worker.terminate() == 0, worker.tail()
    assert not load.failed
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    assert verdict.requests == count
    return verdict, recovery


def test_scenario_3_broker_restart_under_load_loses_nothing(chaos: ChaosRun) -> None:
    def restart(_: CommitSampler) -> float:
        time.sleep(chaos.rng.uniform(0.0, 2.0))
        return restart_broker(chaos.stack, down_s=3.0)

    verdict, recovery = _through_fault(chaos, 40, 4, restart)
    record_verdict("3 broker restart", verdict, faults=1, recovery_s=[recovery])
    assert verdict.dead_letters == 0, "a broker restart is transient: nothing is dead-lettered"
    verdict.assert_safe(max_duplicates=chaos.settings.worker.max_in_flight)


def test_scenario_4_minio_outage_dead_letters_nothing_and_commits_nothing_past_it(
    chaos: ChaosRun,
) -> None:
    during: list[CommitSample] = []

    def outage(sampler: CommitSampler) -> float:
        chaos.stack.stop_minio()
        stopped = time.monotonic()
        try:
            time.sleep(MINIO_OUTAGE_S)
            # Nothing can become durable while the store is down, so no commit may move:
            # the sampler checks that on every sample, these lines on the whole outage.
            during.extend(s for s in sampler.samples if s.at > stopped + 1.0)
        finally:
            chaos.stack.start_minio()
        return time.monotonic()

    verdict, recovery = _through_fault(chaos, 30, 3, outage)
    assert during, "no committed offsets were sampled during the outage"
    assert all(s.committed == during[0].committed for s in during), "committed during outage"
    record_verdict("4 MinIO outage", verdict, faults=1, recovery_s=[recovery])
    assert verdict.dead_letters == 0
    verdict.assert_safe(max_duplicates=0)


def test_scenario_4_minio_answering_slowly_dead_letters_nothing(chaos: ChaosRun) -> None:
    def slow(_: CommitSampler) -> float:
        return minio_slow(chaos.stack, stalls=3, stall_s=2.0, gap_s=1.0)

    verdict, recovery = _through_fault(chaos, 30, 3, slow)
    record_verdict("4 MinIO slow", verdict, faults=3, recovery_s=[recovery])
    assert verdict.dead_letters == 0
    verdict.assert_safe(max_duplicates=0)
