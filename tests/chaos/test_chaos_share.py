"""Share mode (``worker.mode=share``) under a kill -9 storm: four workers on three partitions,
killed at random instants and restarted while requests stream in. Records a killed worker held
come back when their locks end; nothing is lost, and whatever ends as a dead letter says it
was delivered past the limit. Judged from outside, as every scenario (harness/oracle.py),
except commit safety: a share group commits no offsets, it accepts records one by one."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.faults import kill_at_random
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import judge
from tests.chaos.harness.share import all_served, dead_letter_reasons, share_mode
from tests.integration.worker.conftest import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

REQUESTS = 60  # streamed over ~20 s: the load outlasts the storm
KILLS = 3
# Every acknowledged request has an outcome within this long of the last restart: the locks
# of the last killed worker (15 s) and the rest of the work.
SETTLE_BOUND_S = 240.0


def test_share_mode_kill9_storm_loses_nothing(chaos: ChaosRun) -> None:
    settings = chaos.settings = share_mode(chaos.settings)
    outputs = chaos.fleet_outputs()
    names = ["w1", "w2", "w3", "w4"]  # more workers than the topic's three partitions
    workers = {name: chaos.spawn(name) for name in names}
    for worker in workers.values():
        worker.wait_ready()
    with LoadGenerator(settings) as load:
        load.stream(chaos.requests(REQUESTS), rate=3)
        for _ in range(KILLS):
            seen = outputs.refresh()[0]
            assert wait_until(lambda s=seen: outputs.refresh()[0] > s, 90), chaos.logs()
            victim = chaos.rng.choice(names)
            kill_at_random(workers[victim], chaos.rng, 0.0, 1.5)
            workers[victim] = chaos.spawn(victim)
        healed = time.monotonic()
        load.wait()
        assert wait_until(
            lambda: all_served(settings.topics.requests, load.acked, outputs), SETTLE_BOUND_S, 1.0
        ), chaos.logs()
        recovery = time.monotonic() - healed
        codes = [w.terminate() for w in workers.values()]
    verdict = judge(settings, load.acked, outputs)
    letters = outputs.dead_letters()
    record_verdict(
        "share kill -9 storm", verdict, faults=KILLS, recovery_s=[recovery],
        duplicate_bound=KILLS * settings.worker.max_in_flight,
        dead_letter_reasons=dead_letter_reasons(outputs, settings.topics.requests, load.acked),
    )  # fmt: skip
    assert codes == [0] * len(names), chaos.logs()
    assert verdict.requests == REQUESTS and not load.failed
    # A record a worker died holding comes back; one that came back past the limit ends as a
    # dead letter naming the count, never silently (the broker's own limit drops records).
    assert all(d.headers["streamgen.error.code"] == "DELIVERY_LIMIT_EXCEEDED" for d in letters), [
        d.headers for d in letters
    ]
    # Each kill redoes at most what the killed worker held: one round (max_in_flight).
    verdict.assert_safe(max_duplicates=KILLS * settings.worker.max_in_flight)
    takers = {r.worker.worker_id for r in outputs.results()}
    assert len(takers) > 3, f"more workers than partitions, yet only {takers} served"
