"""Scenarios 7 and 8: group membership under load. A worker joins and leaves (cooperative
rebalances, static membership on and off); a batch outlasts max.poll.interval.ms; a worker
whose every thread is frozen past the session timeout comes back to partitions it lost."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.faults import freeze_worker
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.follow import FleetOutputs
from tests.chaos.harness.groups import PROTOCOLS, with_protocol
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, judge, settle
from tests.chaos.harness.workers import WorkerProcess
from tests.chaos.test_chaos_crashes import LAG_ZERO_BOUND_S, wait_for_new_result
from tests.integration.worker.conftest import make_request, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SETTLE_TIMEOUT_S = 180.0


def wait_for_result_from(outputs: FleetOutputs, worker_id: str, chaos: ChaosRun) -> None:
    def produced() -> bool:
        outputs.refresh()
        return any(r.worker.worker_id == worker_id for r in outputs.results())

    assert wait_until(produced, 90), chaos.logs()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_scenario_7_a_worker_joining_and_leaving_mid_load_loses_nothing(
    chaos: ChaosRun, static: bool, protocol: str
) -> None:
    settings = chaos.settings = with_protocol(chaos.settings, protocol)
    outputs = chaos.fleet_outputs()

    def spawn(name: str) -> WorkerProcess:
        instance = f"{settings.worker.group_id}-{name}" if static else ""
        return chaos.spawn(
            name, replace(settings, worker=replace(settings.worker, group_instance_id=instance))
        )

    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        first = spawn("w1")
        first.wait_assigned()
        # Until the newcomer has left: a load of fixed length (20 s, then 30 s) once ended
        # before the newcomer had loaded its model on a loaded 2-core VM, which then had
        # nothing to serve and never produced the result this scenario waits for.
        load.stream_until_stopped(make_request, rate=2)
        wait_for_new_result(outputs, chaos)
        second = spawn("w2")  # joins: partitions move to it (cooperative, incremental)
        second.wait_assigned()
        wait_for_result_from(outputs, "w2", chaos)
        time.sleep(chaos.rng.uniform(0.0, 2.0))
        # Leaves: a dynamic member says so at once; a static one is only noticed when its
        # session times out (that is what static membership is for: restarts without moves).
        assert second.terminate() == 0, second.tail()
        left = time.monotonic()
        load.stop()
        recovery = settle(settings, lambda: load.acked, outputs, LAG_ZERO_BOUND_S, since=left)
        assert first.terminate() == 0, first.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    scenario = f"7 join+leave ({'static' if static else 'dynamic'}, {protocol})"
    record_verdict(scenario, verdict, faults=2, recovery_s=[recovery])
    assert verdict.requests == load.sent and verdict.dead_letters == 0
    verdict.assert_safe(max_duplicates=2 * settings.worker.max_in_flight)


def test_scenario_8_a_batch_longer_than_max_poll_interval_evicts_no_one(chaos: ChaosRun) -> None:
    # A real long batch, no fake: 256x256 at 120 steps on one CPU thread takes about 16 s on
    # an idle 2-core machine (40 steps took 5.5 s there: too close to the 6 s
    # max.poll.interval.ms); the consumer thread must keep polling meanwhile.
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    slow = make_request(0, width=256, height=256, steps=120)
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        worker = chaos.spawn("w1")
        load.publish([slow, *chaos.requests(8)])
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S)
        assert worker.terminate() == 0, worker.tail()
    [slow_result] = [r for r in outputs.results() if r.request_id == slow.request_id]
    assert slow_result.timings.gpu_seconds * 1000 > settings.worker.max_poll_interval_ms, (
        f"the batch took only {slow_result.timings.gpu_seconds:.1f}s: no stall was tested"
    )
    log = worker.log()
    assert "lost " not in log and "MAX_POLL_EXCEEDED" not in log, worker.tail()
    assert log.count("revoked ") == 1, "a rebalance happened before the final shutdown"
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("8 long batch", verdict, faults=1, recovery_s=[recovery])
    verdict.assert_safe(max_duplicates=0)


def test_scenario_8_a_frozen_worker_never_commits_the_partitions_it_lost(chaos: ChaosRun) -> None:
    # The safety net (polling on its own thread) disabled on purpose: SIGSTOP freezes the
    # consumer thread and librdkafka's heartbeats past session.timeout.ms. The group must move
    # on, and when the worker thaws, nothing it commits may move a lost partition's offset.
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    count = 50
    frozen_s = 2 * settings.worker.session_timeout_ms / 1000
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        stalled, other = chaos.spawn("w1"), chaos.spawn("w2")
        stalled.wait_assigned()
        other.wait_assigned()
        load.stream(chaos.requests(count), rate=3)
        wait_for_result_from(outputs, "w1", chaos)
        wait_for_result_from(outputs, "w2", chaos)
        frozen_at = time.monotonic()
        healed = freeze_worker(stalled, frozen_s)
        load.wait()
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S, since=healed)
        assert other.terminate() == 0, other.tail()
        assert stalled.terminate() == 0, stalled.tail()
    assert "lost " in stalled.log() or "MAX_POLL_EXCEEDED" in stalled.log(), (
        "the frozen worker was never evicted: the scenario did not happen\n" + stalled.tail()
    )
    moved_on = [s for s in sampler.samples if frozen_at + 1 < s.at < healed]
    assert len({tuple(sorted(s.committed.items())) for s in moved_on}) > 1, (
        "the group did not move on while the worker was frozen"
    )
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("8 frozen consumer", verdict, faults=1, recovery_s=[recovery])
    assert verdict.requests == count and verdict.dead_letters == 0
    # commit_regressions is where a stale commit of a lost partition would show.
    verdict.assert_safe(max_duplicates=2 * settings.worker.max_in_flight)
