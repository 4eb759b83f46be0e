"""Scenario 11: kill -9 one of two workers, then a new member joins while the dead one still
holds its partitions. Under the classic protocol the rebalance waits a whole session timeout for
the dead member, and the survivor's commits are refused meanwhile; under KIP-848 the newcomer
gets partitions at once and the dead member's move when its session expires. Either way the
work redone must stay within max_in_flight (README: Delivery guarantees)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.groups import set_consumer_group_session
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, judge, settle
from tests.chaos.test_chaos_crashes import LAG_ZERO_BOUND_S
from tests.chaos.test_chaos_membership import wait_for_result_from

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

# Long enough that the survivor could run far past max_in_flight while the dead member still
# holds its partitions (the finding: 44 s frozen commits, 304 redone against a bound of 64).
SESSION_MS = 15_000
REQUESTS = 150
# An engine fast next to the commit interval (a no-op engine does 125 requests a second against
# the default 1 s interval): durable work then waits long for its commit, which is what a
# window counting only unfinished work let grow without bound.
COMMIT_INTERVAL_MS = 5_000


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_scenario_11_kill9_then_a_join_while_the_dead_member_holds_partitions(
    chaos: ChaosRun, protocol: str
) -> None:
    settings = replace(
        chaos.settings,
        worker=replace(
            chaos.settings.worker,
            group_protocol=protocol,
            session_timeout_ms=SESSION_MS,
            max_poll_interval_ms=SESSION_MS,
            commit_interval_ms=COMMIT_INTERVAL_MS,
        ),
    )
    chaos.settings = settings
    if protocol == "consumer":
        set_consumer_group_session(settings, SESSION_MS, 1000)
    outputs = chaos.fleet_outputs()
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        doomed, survivor = chaos.spawn("w1"), chaos.spawn("w2")
        doomed.wait_assigned()
        survivor.wait_assigned()
        load.stream(chaos.requests(REQUESTS), rate=5)  # ~30 s: outlasts the dead session
        wait_for_result_from(outputs, "w1", chaos)
        wait_for_result_from(outputs, "w2", chaos)
        time.sleep(chaos.rng.uniform(0.0, 1.5))
        doomed.kill9()
        killed = time.monotonic()
        newcomer = chaos.spawn("w3")  # joins while w1's session is still alive
        newcomer.wait_assigned()
        load.wait()
        recovery = settle(settings, lambda: load.acked, outputs, LAG_ZERO_BOUND_S, since=killed)
        assert survivor.terminate() == 0, survivor.tail()
        assert newcomer.terminate() == 0, newcomer.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict(f"11 kill -9 + join ({protocol})", verdict, faults=1, recovery_s=[recovery])
    assert verdict.requests == REQUESTS and not load.failed
    assert verdict.dead_letters == 0
    # One member died with work in hand: the fleet redoes at most its window.
    verdict.assert_safe(max_duplicates=settings.worker.max_in_flight)
