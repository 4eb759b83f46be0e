"""Scenario 12: a worker started against a wrong bootstrap address, or while the broker is
stopped, exits within kafka.connect_timeout_s with exit code 4 and one line naming the setting;
once the broker is back, the same settings start a worker that works."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from streamgen.exit_codes import EXIT_CONFIG
from streamgen.local.process import free_ports
from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, judge, settle

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

CONNECT_TIMEOUT_S = 5.0
# Python and torch start, then the broker check: the connect timeout plus process start-up.
EXIT_WITHIN_S = CONNECT_TIMEOUT_S + 40.0


def assert_exits_naming(chaos: ChaosRun, name: str, settings_: object, setting: str) -> float:
    worker = chaos.spawn(name, settings_)  # type: ignore[arg-type]
    code = worker.process.wait(EXIT_WITHIN_S * 2)
    took = time.monotonic() - worker.started
    log = worker.log()
    assert code == EXIT_CONFIG, worker.tail()
    assert took < EXIT_WITHIN_S, f"exit after {took:.1f}s\n{worker.tail()}"
    assert "Traceback" not in log and "consuming" not in log, worker.tail()
    assert f"setting {setting!r}" in log, worker.tail()
    return took


def test_scenario_12_a_bad_start_fails_fast_and_a_good_one_then_works(chaos: ChaosRun) -> None:
    settings = replace(
        chaos.settings, kafka=replace(chaos.settings.kafka, connect_timeout_s=CONNECT_TIMEOUT_S)
    )
    chaos.settings = settings
    [port] = free_ports(1)
    wrong = replace(settings, kafka=replace(settings.kafka, bootstrap_servers=f"127.0.0.1:{port}"))
    exits = [assert_exits_naming(chaos, "wrong-address", wrong, "kafka.bootstrap_servers")]
    chaos.stack.stop_kafka()
    try:
        exits.append(assert_exits_naming(chaos, "broker-down", settings, "kafka.bootstrap_servers"))
    finally:
        chaos.stack.start_kafka()
    healed = time.monotonic()
    outputs = chaos.fleet_outputs()
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        worker = chaos.spawn("w1")
        load.publish(chaos.requests(10))
        recovery = settle(settings, lambda: load.acked, outputs, 120.0, since=healed)
        assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    print(f"bad starts exited after {[round(s, 1) for s in exits]} s")
    record_verdict("12 bad start", verdict, faults=2, recovery_s=[recovery])
    verdict.assert_safe(max_duplicates=0)
