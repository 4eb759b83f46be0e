"""Scenarios 13 and 14: a rolling restart of a two-worker fleet, and a fleet scaled from one
worker to three and back, under load and under both group protocols. Every partition must be
fetched again wherever it lands: lag returns to 0 within LAG_ZERO_BOUND_S of the last request
published (after the last membership change), or the scenario fails (issue 22)."""

from __future__ import annotations

import time

import pytest

from streamgen.settings import Settings
from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.groups import PROTOCOLS, with_protocol
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, Verdict, judge, settle
from tests.chaos.test_chaos_crashes import LAG_ZERO_BOUND_S
from tests.chaos.test_chaos_membership import wait_for_result_from
from tests.integration.worker.conftest import make_request

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

REQUESTS = 90  # streamed over ~30 s: the load outlasts every membership change


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scenario_13_a_rolling_restart_under_load_leaves_no_partition_behind(
    chaos: ChaosRun, protocol: str
) -> None:
    settings = chaos.settings = with_protocol(chaos.settings, protocol)
    outputs = chaos.fleet_outputs()
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        fleet = {name: chaos.spawn(name) for name in ("w1", "w2")}
        for worker in fleet.values():
            worker.wait_assigned()
        load.stream(chaos.requests(REQUESTS), rate=3)
        for name in ("w1", "w2"):  # one at a time, each back before the next goes
            wait_for_result_from(outputs, name, chaos)
            assert fleet[name].terminate() == 0, fleet[name].tail()
            fleet[name] = chaos.spawn(name)
            fleet[name].wait_assigned()
        changed = time.monotonic()
        load.wait()
        recovery = settle(settings, lambda: load.acked, outputs, LAG_ZERO_BOUND_S, since=changed)
        for worker in fleet.values():
            assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    assert_membership_safe(
        f"13 rolling restart ({protocol})", verdict, 2, recovery, settings, REQUESTS
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scenario_14_scaling_up_to_three_workers_and_back_to_one_leaves_no_partition_behind(
    chaos: ChaosRun, protocol: str
) -> None:
    settings = chaos.settings = with_protocol(chaos.settings, protocol)
    outputs = chaos.fleet_outputs()
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        first = chaos.spawn("w1")
        first.wait_assigned()
        # Until the fleet is back to one: each newcomer must find work whatever its start takes.
        load.stream_until_stopped(make_request, rate=3)
        wait_for_result_from(outputs, "w1", chaos)
        added = []
        for name in ("w2", "w3"):  # up: partitions move to each newcomer
            added.append(chaos.spawn(name))
            added[-1].wait_assigned()
            wait_for_result_from(outputs, name, chaos)
        for worker in reversed(added):  # down: they move back
            assert worker.terminate() == 0, worker.tail()
        changed = time.monotonic()
        load.stop()
        recovery = settle(settings, lambda: load.acked, outputs, LAG_ZERO_BOUND_S, since=changed)
        assert first.terminate() == 0, first.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    scenario = f"14 scale 1-3-1 ({protocol})"
    assert_membership_safe(scenario, verdict, 4, recovery, settings, load.sent)


def assert_membership_safe(
    scenario: str, verdict: Verdict, faults: int, recovery: float, settings: Settings, sent: int
) -> None:
    record_verdict(scenario, verdict, faults=faults, recovery_s=[recovery])
    assert verdict.requests == sent and verdict.dead_letters == 0
    # A drained member commits what is durable; what its revoke abandons is redone.
    verdict.assert_safe(max_duplicates=2 * settings.worker.max_in_flight)
