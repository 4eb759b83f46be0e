"""Share mode (``worker.mode=share``, KIP-932) against the real broker and MinIO: workers share
one partition, poison records are dead-lettered and accepted, the broker's delivery count
ends a record that keeps coming back, a worker killed holding records loses none, and a share
group that cannot serve the settings stops the start with exit 4."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import replace

import pytest
from confluent_kafka import Producer

from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.engine import DiffusionEngine
from streamgen.exit_codes import EXIT_CONFIG
from streamgen.local.kafka import prepare_kafka
from streamgen.local.process import free_ports
from streamgen.local.stack import LocalStack
from streamgen.ops.share_group import configure_share_group
from streamgen.ops.topics import TopicSpec, create_topics
from streamgen.settings import Settings
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.run import run_worker
from tests.integration.worker.conftest import (
    make_request,
    publish,
    publish_raw,
    read_dead_letters,
    read_results,
    settings_env,
    wait_until,
    with_worker,
    worker_thread,
)
from tests.integration.worker.engines import GatedEngine, SlowEngine

pytestmark = pytest.mark.integration

LOCK_MS = 15_000  # the broker's shortest (group.share.min.record.lock.duration.ms)


@pytest.fixture
def share_settings(worker_settings: Settings) -> Settings:
    """Share mode on a requests topic of ONE partition (workers share it), the group reading
    from the earliest record with the shortest lock; a round of at most 2 records."""
    topics = replace(
        worker_settings.topics,
        requests=f"{worker_settings.topics.requests}.one",
        partitions=1,
    )
    bootstrap = worker_settings.kafka.bootstrap_servers
    create_topics(bootstrap, [TopicSpec(topics.requests, 1, 1, topics.retention_ms)])
    settings = with_worker(
        replace(worker_settings, topics=topics),
        mode="share",
        max_in_flight=2,
        share_lock_margin_s=3.0,
        share_batch_s=2.0,
    )
    configure_share_group(
        {"bootstrap.servers": bootstrap}, settings.worker.group_id, lock_ms=LOCK_MS
    )
    return settings


def _hooks(settings: Settings, worker_id: str) -> WorkerHooks:
    return WorkerHooks(Metrics(), worker_id=worker_id, host="h", group_id=settings.worker.group_id)


def _sample(hooks: WorkerHooks, name: str, **labels: str) -> float:
    return hooks.metrics.registry.get_sample_value(name, labels) or 0.0


def test_one_worker_serves_every_request_and_accepts_each_once(share_settings: Settings) -> None:
    """Each request served once, each record accepted once its result is durable."""
    requests = [make_request(i) for i in range(6)]
    publish(share_settings, requests)
    hooks = _hooks(share_settings, "solo")
    with worker_thread(with_worker(share_settings, worker_id="solo"), hooks=hooks) as worker:
        results = read_results(share_settings, expected=len(requests), timeout=180)
        assert wait_until(
            lambda: _sample(hooks, "streamgen_share_records_total", ack="accept") == 6, 30
        )
        assert worker.stop_and_wait() == 0
    assert sorted(r.request_id for r in results) == sorted(r.request_id for r in requests)
    assert all(r.status == "SUCCEEDED" for r in results)
    # The six came in one record batch (the broker lends it whole) and 2 are started at a
    # time: the round kept the other four and started them as the first became durable,
    # rather than release them (each release costs a delivery: issue 27's defect).
    assert _sample(hooks, "streamgen_share_excess_released_total") == 0
    assert _sample(hooks, "streamgen_share_records_total", ack="release") == 0
    assert _sample(hooks, "streamgen_share_lock_overruns_total") == 0


def test_a_backlog_many_rounds_deep_is_served_not_dead_lettered(share_settings: Settings) -> None:
    """Issue 27's defect. 40 requests in ONE record batch, 2 started at a time, two workers.
    The broker lends a poll the whole batch; the round used to keep 2 and release the rest,
    and every poll lent that rest again, one more delivery each time, until the worker's limit
    dead-lettered most of it DELIVERY_LIMIT_EXCEEDED, unstarted. Now a round keeps what it was
    lent and starts it as the lock allows: in a clean run nothing is started twice, so no
    record may end past the delivery limit, and every one is generated once."""
    requests = [make_request(i) for i in range(40)]
    _publish_one_batch(share_settings, requests)
    hooks = [_hooks(share_settings, w) for w in ("b1", "b2")]
    with (
        worker_thread(with_worker(share_settings, worker_id="b1"), hooks=hooks[0]) as b1,
        worker_thread(with_worker(share_settings, worker_id="b2"), hooks=hooks[1]) as b2,
    ):
        results = read_results(share_settings, expected=len(requests), timeout=240)
        assert [b1.stop_and_wait(), b2.stop_and_wait()] == [0, 0]
    failed = [(r.request_id, r.error) for r in results if r.status != "SUCCEEDED"]
    assert failed == [], f"{len(failed)} of 40 not generated: {failed[:3]}"
    assert sorted(r.request_id for r in results) == sorted(r.request_id for r in requests)
    assert read_dead_letters(share_settings, timeout=3) == []
    assert sum(_sample(h, "streamgen_share_delivery_limit_total") for h in hooks) == 0
    assert sum(_sample(h, "streamgen_share_lock_overruns_total") for h in hooks) == 0


def test_a_record_batch_too_large_for_one_worker_is_requeued_and_shared(
    share_settings: Settings,
) -> None:
    """What remained of issue 27. 100 requests in ONE record batch; each worker starts 2 at a
    time and a batch takes 1 s, so one worker starts about 20 in a lock (15 s less the margin
    and a batch's time), about 80 in the delivery limit's 4 locks. Releasing what its lock left
    no time for (worker.share_requeue=false, main before it) hands the whole rest back with one
    delivery more, to one member at a time, until its tail is dead-lettered
    DELIVERY_LIMIT_EXCEEDED (25 of 100, measured). Requeued (what the round cannot count on
    starting, at once), the rest comes back as copies in batches of 2, which both workers
    take: every request generated once, none dead-lettered, every ACCEPT taken."""
    requests = [make_request(i) for i in range(100)]
    _publish_one_batch(share_settings, requests)
    hooks = [_hooks(share_settings, w) for w in ("r1", "r2")]
    engines = [SlowEngine(DiffusionEngine(share_settings.engine), sleep_s=1.0) for _ in hooks]
    settings = [with_worker(share_settings, worker_id=w) for w in ("r1", "r2")]
    with (
        worker_thread(settings[0], engine=engines[0], hooks=hooks[0]) as r1,
        worker_thread(settings[1], engine=engines[1], hooks=hooks[1]) as r2,
    ):
        results = read_results(share_settings, expected=len(requests), timeout=240)
        assert [r1.stop_and_wait(), r2.stop_and_wait()] == [0, 0]
    failed = Counter(r.error.code for r in results if r.status != "SUCCEEDED" and r.error)
    assert not failed, f"not generated: {failed}"
    per_id = Counter(r.request_id for r in results)
    assert set(per_id) == {r.request_id for r in requests}
    assert max(per_id.values()) == 1, "a clean run serves each request once"
    assert read_dead_letters(share_settings, timeout=3) == []
    takers = Counter(r.worker.worker_id for r in results)
    assert len(takers) == 2, f"one worker served the whole batch: {takers}"
    assert sum(_sample(h, "streamgen_share_requeued_total") for h in hooks) > 0
    for name in ("delivery_limit", "excess_released", "lock_overruns", "ack_failures"):
        assert sum(_sample(h, f"streamgen_share_{name}_total") for h in hooks) == 0, name


def _publish_one_batch(settings: Settings, requests: list[GenerationRequest]) -> None:
    """All in one record batch: nothing leaves the producer before the flush."""
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 60_000}
    )
    for request in requests:
        key = request.request_id.encode()
        producer.produce(settings.topics.requests, key=key, value=codec.encode(request))
    assert producer.flush(30) == 0


def test_three_workers_share_one_partition(share_settings: Settings) -> None:
    """24 requests in three record batches of 8, rounds of 8: a poll asks for 8 and the broker
    lends whole record batches, so each idle member takes a batch of the one partition."""
    requests = [make_request(i, steps=4) for i in range(24)]
    ports = free_ports(3)
    settings = [
        with_worker(
            share_settings,
            max_in_flight=8,
            worker_id=f"w{i}",
            metrics_port=port,
            metrics_address="127.0.0.1",
        )
        for i, port in enumerate(ports, 1)
    ]
    with (
        worker_thread(settings[0]) as w1,
        worker_thread(settings[1]) as w2,
        worker_thread(settings[2]) as w3,
    ):
        assert wait_until(lambda: all(_ready(port) for port in ports), 180)
        for first in (0, 8, 16):
            _publish_one_batch(share_settings, requests[first : first + 8])
        results = read_results(share_settings, expected=len(requests), timeout=240)
        assert [w.stop_and_wait() for w in (w1, w2, w3)] == [0, 0, 0]
    per_id = Counter(r.request_id for r in results)
    assert set(per_id) == {r.request_id for r in requests}
    assert max(per_id.values()) == 1, "a clean run redid nothing"
    assert all(r.status == "SUCCEEDED" for r in results), "none reached the delivery limit"
    takers = Counter(r.worker.worker_id for r in results)
    assert len(takers) > 1, f"one worker took the whole partition: {takers}"


def test_a_poison_record_is_dead_lettered_and_accepted_not_delivered_again(
    share_settings: Settings,
) -> None:
    publish_raw(share_settings, [(b"poison-1", b"\x00not avro at all")])
    good = [make_request(i) for i in range(2)]
    publish(share_settings, good)
    with worker_thread(share_settings) as worker:
        read_results(share_settings, expected=3, timeout=180)  # the poison's FAILED result too
        dead = read_dead_letters(share_settings, expected=1)
        assert worker.stop_and_wait() == 0
    assert len(dead) == 1 and dead[0][0] == b"poison-1"
    assert dead[0][2]["streamgen.error.code"] == "DECODE_ERROR"
    # A second worker of the group: had the poison been released or left to its lock, it would
    # come (first: it is the oldest record) before the new request that follows it.
    after = make_request(99)
    publish(share_settings, [after])
    with worker_thread(share_settings) as worker:
        results = read_results(share_settings, expected=4, timeout=180)
        assert worker.stop_and_wait() == 0
    assert after.request_id in {r.request_id for r in results}
    assert len(read_dead_letters(share_settings, timeout=3)) == 1


def test_a_record_past_the_delivery_limit_is_dead_lettered_naming_the_count(
    share_settings: Settings,
) -> None:
    """A batch that never finishes overruns its lock: released (counted), delivered again,
    and with a limit of 1 the second delivery is dead-lettered, its reason naming 2."""
    settings = with_worker(share_settings, share_delivery_limit=1)
    request = make_request(0)
    publish(settings, [request])
    engine = GatedEngine(DiffusionEngine(settings.engine))  # holds the batch: the lock expires
    hooks = _hooks(settings, "held")
    try:
        with worker_thread(settings, engine=engine, hooks=hooks) as worker:
            dead = read_dead_letters(settings, expected=1, timeout=120)
            results = read_results(settings, expected=1, timeout=30)
            engine.gate.set()
            assert worker.stop_and_wait() == 0
    finally:
        engine.gate.set()
    headers = dead[0][2]
    assert headers["streamgen.error.code"] == "DELIVERY_LIMIT_EXCEEDED"
    assert "delivered 2 times" in headers["streamgen.error.message"]
    assert [(r.request_id, r.status) for r in results] == [(request.request_id, "FAILED")]
    assert _sample(hooks, "streamgen_share_lock_overruns_total") == 1
    assert _sample(hooks, "streamgen_share_delivery_limit_total") == 1


def test_a_worker_killed_holding_records_loses_none(share_settings: Settings) -> None:
    settings = with_worker(share_settings, max_in_flight=6)  # a round takes the whole poll
    requests = [make_request(i, steps=12) for i in range(6)]
    publish(settings, requests)
    env = {**os.environ, **settings_env(with_worker(settings, worker_id="doomed"))}
    doomed = subprocess.Popen(
        [sys.executable, "-m", "streamgen", "worker"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        # One result out: the worker is mid-round, holding the rest of its poll.
        assert wait_until(lambda: len(read_results(share_settings, timeout=1)) >= 1, 180)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(30)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    wanted = {r.request_id for r in requests}
    with worker_thread(with_worker(settings, worker_id="heir")) as heir:
        assert wait_until(
            lambda: {r.request_id for r in read_results(share_settings, timeout=1)} >= wanted,
            240,
            interval=1.0,
        )
        assert heir.stop_and_wait() == 0
    results = read_results(share_settings, timeout=3)
    assert {r.request_id for r in results} == wanted
    assert all(r.status == "SUCCEEDED" for r in results)
    assert "heir" in {r.worker.worker_id for r in results}, "nothing was left to the heir"


def test_a_lock_too_short_for_a_batch_exits_4_naming_the_setting(
    share_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = with_worker(share_settings, share_batch_s=LOCK_MS / 1000)  # no room for a margin
    with caplog.at_level(logging.ERROR):
        code = run_worker(settings, install_signal_handlers=False)
    assert code == EXIT_CONFIG
    assert "worker.share_batch_s" in caplog.text and "share.record.lock.duration.ms" in caplog.text


def test_a_delivery_limit_the_broker_would_cut_short_exits_4(
    share_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = with_worker(share_settings, share_delivery_limit=5)  # the broker's own limit
    with caplog.at_level(logging.ERROR):
        assert run_worker(settings, install_signal_handlers=False) == EXIT_CONFIG
    assert "worker.share_delivery_limit" in caplog.text


def test_a_broker_without_share_groups_exits_4_naming_worker_mode(
    stack: LocalStack, share_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    features = _feature_command(stack)
    subprocess.run([*features, "disable", "--feature", "share.version"], check=True)
    try:
        with caplog.at_level(logging.ERROR):
            code = run_worker(share_settings, install_signal_handlers=False)
    finally:
        subprocess.run([*features, "upgrade", "--feature", "share.version=1"], check=True)
    assert code == EXIT_CONFIG
    assert "'worker.mode'" in caplog.text and "share" in caplog.text


def _feature_command(stack: LocalStack) -> list[str]:
    libs = prepare_kafka()  # the stack's own jars (kafka-tools among them)
    return [
        "java",
        "-cp",
        f"{libs}/*",
        "org.apache.kafka.tools.FeatureCommand",
        "--bootstrap-server",
        stack.bootstrap_servers,
    ]


def test_dev_up_style_group_config_is_what_the_worker_reads(share_settings: Settings) -> None:
    from streamgen.worker.share_startup import check_share_group

    facts = check_share_group(share_settings)
    assert facts.lock_s == LOCK_MS / 1000
    assert facts.broker_delivery_limit == 5


def test_a_transient_intake_failure_waits_within_the_lock_and_dead_letters_nothing(
    stack: LocalStack,
    share_settings: Settings,
    schema_registry: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The registry away when records arrive: intake is retried with backoff inside the
    round (never dead-lettered), and once the registry is back the records are served."""
    settings = replace(
        share_settings, kafka=replace(share_settings.kafka, schema_registry_url=schema_registry)
    )
    requests = [make_request(i) for i in range(3)]
    codec = request_codec(settings.kafka, settings.topics.requests)
    encoded = [(r.request_id.encode(), codec.encode(r)) for r in requests]  # registers it
    port = free_ports(1)[0]
    settings = with_worker(settings, metrics_port=port, metrics_address="127.0.0.1")
    try:
        with caplog.at_level(logging.WARNING), worker_thread(settings) as worker:
            assert wait_until(lambda: _ready(port), 120)
            stack.stop_registry()  # after the start-up check: the worker has not decoded yet
            publish_raw(settings, encoded)
            assert wait_until(lambda: "waits: " in caplog.text, 60), "intake never failed"
            stack.start_registry()
            results = read_results(settings, expected=len(requests), timeout=180)
            assert worker.stop_and_wait() == 0
    finally:
        stack.start_registry()
    assert sorted((r.request_id, r.status) for r in results) == sorted(
        (r.request_id, "SUCCEEDED") for r in requests
    )
    assert read_dead_letters(settings, timeout=3) == []


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
