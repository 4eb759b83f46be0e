"""The worker against a broker that wants SASL/SCRAM logins and ACLs (`streamgen dev up --secure`).

Each test gets fresh topics and a group, with exactly the ACLs README lists for the worker and
the producer (granted by the same functions `dev up --secure` uses), and nothing else. Workers
run as real processes (`python -m streamgen worker`), as an operator would start them, so their
whole output can be searched for the secrets they were given (DESIGN invariants 9 and 10).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from streamgen.contracts.codec import result_codec
from streamgen.contracts.result import GenerationResult
from streamgen.local.acls import grant, producer_acls, worker_acls
from streamgen.local.process import free_ports
from streamgen.local.stack import LocalStack
from streamgen.ops.topics import TopicSpec, create_topics, plan_topics
from streamgen.settings import (
    EngineSettings,
    KafkaSettings,
    Settings,
    StoreSettings,
    TopicSettings,
    WorkerSettings,
)
from tests.integration.worker.conftest import settings_env, wait_until
from tests.integration.worker.test_startup import assert_refused
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

REQUESTS = 4


@pytest.fixture
def secure_settings(secure_stack: LocalStack, tiny_model: Path) -> Settings:
    """The worker's login, fresh topics and group, and the worker's and producer's ACLs."""
    tag = uuid.uuid4().hex[:10]
    topics = TopicSettings(
        requests=f"test-{tag}.requests",
        results=f"test-{tag}.results",
        dead_letter=f"test-{tag}.dead-letter",
        partitions=3,
    )
    group = f"streamgen-test-{tag}"
    create_topics(
        secure_stack.bootstrap_servers,
        plan_topics(topics),
        client_config=secure_stack.kafka_client_config("admin"),
    )
    admin = admin_config(secure_stack)
    grant(admin, "worker", worker_acls(topics, group))
    grant(admin, "producer", producer_acls(topics))
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=secure_stack.bootstrap_servers,
            client_config=secure_stack.kafka_client_config("worker"),
            connect_timeout_s=5.0,
        ),
        topics=topics,
        store=StoreSettings(
            url=f"s3://test-{tag}",
            endpoint=secure_stack.minio_endpoint,
            access_key=secure_stack.minio_access_key,
            secret_key=secure_stack.minio_secret_key,
            create_bucket=True,
            connect_timeout_s=5.0,
        ),
        engine=EngineSettings(models={"tiny": str(tiny_model)}, device="cpu", max_batch_size=4),
        worker=WorkerSettings(group_id=group, max_wait_ms=300, commit_interval_ms=200),
    )


def admin_config(stack: LocalStack) -> dict[str, str]:
    return {**stack.kafka_client_config("admin"), "bootstrap.servers": stack.bootstrap_servers}


def login_env(stack: LocalStack, user: str) -> dict[str, str]:
    login = stack.kafka_client_config(user)
    return {"STREAMGEN_KAFKA_CLIENT_CONFIG": ",".join(f"{k}={v}" for k, v in login.items())}


@pytest.fixture
def worker_process(
    secure_settings: Settings, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    """A worker process reading its password and the store's secret key from files; its whole
    output (at DEBUG) goes to a log file. Yields (process, log file, metrics port)."""
    kafka_login = tmp_path / "kafka.properties"
    kafka_login.write_text(
        f"# the worker's login\nsasl.password={password(secure_settings)}\n"
        # librdkafka's own configuration dump and SASL handshake, at debug level too.
        "debug=conf,security\n"
    )
    store_secret = tmp_path / "store-secret"
    store_secret.write_text(secure_settings.store.secret_key + "\n")
    [port] = free_ports(1)
    settings = replace(
        secure_settings,
        kafka=replace(
            secure_settings.kafka,
            client_config={
                k: v
                for k, v in secure_settings.kafka.client_config.items()
                if k != "sasl.password"  # from the file only
            },
            client_config_file=str(kafka_login),
        ),
        store=replace(secure_settings.store, secret_key="", secret_key_file=str(store_secret)),
        worker=replace(secure_settings.worker, metrics_port=port, metrics_address="127.0.0.1"),
    )
    log_file = tmp_path / "worker.log"
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamgen", "--log-level", "DEBUG", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, log_file, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def password(settings: Settings) -> str:
    return settings.kafka.client_config["sasl.password"]


def submit(stack: LocalStack, settings: Settings, user: str) -> subprocess.CompletedProcess[str]:
    """`streamgen submit` of REQUESTS tiny requests, logged in as ``user`` through the
    environment."""
    env = {
        **os.environ,
        "STREAMGEN_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        **login_env(stack, user),
    }
    command = [
        sys.executable, "-m", "streamgen", "submit", "--topic", settings.topics.requests,
        "--count", str(REQUESTS), "--prompt", "a red bicycle", "--model", "tiny",
        "--width", "64", "--height", "64", "--steps", "2", "--seed", "7", "--json",
        "--timeout", "15",
    ]  # fmt: skip
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def results_as_admin(stack: LocalStack, settings: Settings) -> list[GenerationResult]:
    """The REQUESTS results, read as admin (waiting up to 240 s for them)."""
    codec = result_codec(settings.kafka, settings.topics.results)
    messages = consume_all(
        stack.bootstrap_servers,
        settings.topics.results,
        expected=REQUESTS,
        timeout=240,
        client_config=stack.kafka_client_config("admin"),
    )
    return [codec.decode(m.value()) for m in messages]


def committed_everything(stack: LocalStack, settings: Settings) -> bool:
    """Has the worker's group committed each requests partition to its end? (asked as admin)"""
    config = {**admin_config(stack), "group.id": settings.worker.group_id}
    consumer = Consumer(config)
    try:
        partitions = [
            TopicPartition(settings.topics.requests, p) for p in range(settings.topics.partitions)
        ]
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions
        }
        return all(committed[p] == end for p, end in ends.items() if end > 0)
    finally:
        consumer.close()


def produce_as(stack: LocalStack, user: str, topic: str) -> KafkaError | None:
    """Produce one record to ``topic`` logged in as ``user``; the delivery error, if any."""
    config: dict[str, Any] = {
        **stack.kafka_client_config(user),
        "bootstrap.servers": stack.bootstrap_servers,
        "enable.idempotence": True,
        "message.timeout.ms": 10_000,
        "log_level": 0,
    }
    producer = Producer(config)
    errors: list[KafkaError | None] = []
    producer.produce(topic, b"probe", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(20)
    [error] = errors
    return error


def read_as(stack: LocalStack, user: str, topic: str) -> bytes | KafkaError:
    """The first record of ``topic``'s partition 0, read logged in as ``user`` as ``submit
    --wait`` reads (assigned; its throw-away group never joined: the group errors librdkafka
    reports then are skipped, as the follower skips them), or the topic authorization error."""
    config: dict[str, Any] = {
        **stack.kafka_client_config(user),
        "bootstrap.servers": stack.bootstrap_servers,
        "group.id": f"probe-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "log_level": 0,
    }
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return bytes(message.value() or b"")
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                return error
        raise AssertionError(f"neither a record nor a refusal from {topic} in 20 s")
    finally:
        consumer.close()


def assert_secret_free(text: str, secrets: Mapping[str, str]) -> None:
    for what, secret in secrets.items():
        if secret in text:  # not an assert: its report would print the secret once more
            pytest.fail(f"the {what} was printed")


def test_the_worker_works_with_only_its_acls_and_never_prints_a_secret(
    secure_stack: LocalStack,
    secure_settings: Settings,
    worker_process: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    process, log_file, port = worker_process
    started = wait_until(
        lambda: process.poll() is not None or "consuming" in log_file.read_text(), timeout=180
    )
    assert started and process.poll() is None, log_file.read_text()[-3000:]
    # 1. Requests go in through the producer's login (environment), as upstream would send them.
    sent = submit(secure_stack, secure_settings, "producer")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    # 2. SUCCEEDED results come out (read as admin), and the group commits behind them.
    results = results_as_admin(secure_stack, secure_settings)
    assert [r.status for r in results] == ["SUCCEEDED"] * REQUESTS, log_file.read_text()[-3000:]
    assert wait_until(lambda: committed_everything(secure_stack, secure_settings), timeout=30)
    # 3. The metrics page and the whole log (DEBUG) hold no secret.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        metrics = page.read().decode()
    assert "streamgen_requests_succeeded_total" in metrics
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    log = log_file.read_text()
    secrets = {
        "worker's Kafka password": password(secure_settings),
        "object store secret key": secure_settings.store.secret_key,
    }
    assert_secret_free(metrics, secrets)
    assert_secret_free(log, secrets)
    assert f"metrics on http://127.0.0.1:{port}/metrics" in log
    assert "AUTHORIZATION_FAILED" not in log, "the worker's ACLs fell short"


def test_a_wrong_password_stops_start_up_naming_kafka_client_config(
    secure_settings: Settings,
) -> None:
    wrong = "not-the-password"
    config = {**secure_settings.kafka.client_config, "sasl.password": wrong}
    settings = replace(secure_settings, kafka=replace(secure_settings.kafka, client_config=config))
    # A connect timeout far past the worker's own bound in start_worker (killed after 120 s):
    # the refusal must come from what librdkafka reported, not from waiting the timeout out.
    line = assert_refused(
        settings, "kafka.client_config", "refused our credentials", kafka_timeout_s=600.0
    )
    assert "SASL authentication error" in line
    assert wrong not in line


@pytest.mark.parametrize(
    "command",
    [
        ["submit", "--prompt", "a red bicycle", "--model", "tiny", "--steps", "2"],
        ["submit", "--prompt", "a red bicycle", "--model", "tiny", "--steps", "2", "--wait"],
        ["lag", "--sample", "0"],
        ["replay", "--dry-run"],
        ["topics", "create", "--no-bucket"],
    ],
    ids=["submit", "submit-wait", "lag", "replay", "topics-create"],
)
def test_every_command_says_a_wrong_password_naming_kafka_client_config(
    secure_settings: Settings, command: list[str]
) -> None:
    """Each command's first metadata request goes through streamgen.kafka_metadata: the
    refusal librdkafka reported, not "cannot reach Kafka" after the command's own timeout."""
    wrong = "not-the-password"
    config = {**secure_settings.kafka.client_config, "sasl.password": wrong}
    settings = replace(secure_settings, kafka=replace(secure_settings.kafka, client_config=config))
    done = subprocess.run(
        [sys.executable, "-m", "streamgen", *command],
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "setting 'kafka.client_config'" in output, output
    assert "refused our credentials" in output and "SASL authentication error" in output, output
    assert "Traceback" not in output, output
    # Said once: no other client was made before the probe, to log its own failed logins.
    assert "FAIL" not in output, output
    assert_secret_free(output, {"wrong password": wrong})


def test_a_topic_the_worker_was_not_granted_stops_start_up(
    secure_stack: LocalStack, secure_settings: Settings
) -> None:
    other = f"{secure_settings.topics.results}-not-granted"
    spec = TopicSpec(other, 1, 1, 3_600_000)
    create_topics(
        secure_stack.bootstrap_servers,
        [spec],
        client_config=secure_stack.kafka_client_config("admin"),
    )
    topics = replace(secure_settings.topics, results=other)
    assert_refused(replace(secure_settings, topics=topics), "topics.results", other, "ACLs")


def test_submit_with_a_login_that_may_not_write_requests_is_refused(
    secure_stack: LocalStack, secure_settings: Settings
) -> None:
    done = submit(secure_stack, secure_settings, "worker")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Topic authorization failed" in output, output
    assert "Traceback" not in output, output
    assert_secret_free(output, {"worker's password": password(secure_settings)})


@pytest.mark.parametrize(
    ("user", "topic"),
    [("worker", "requests"), ("producer", "results"), ("producer", "dead_letter")],
)
def test_a_login_cannot_write_where_it_was_not_granted(
    secure_stack: LocalStack, secure_settings: Settings, user: str, topic: str
) -> None:
    error = produce_as(secure_stack, user, getattr(secure_settings.topics, topic))
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_granted_writes_go_through(secure_stack: LocalStack, secure_settings: Settings) -> None:
    """The counterpart of the refusals above: the same logins where they were granted."""
    assert produce_as(secure_stack, "producer", secure_settings.topics.requests) is None
    assert produce_as(secure_stack, "worker", secure_settings.topics.dead_letter) is None


@pytest.mark.parametrize(("user", "readable"), [("producer", True), ("worker", False)])
def test_only_the_producer_may_follow_results(
    secure_stack: LocalStack, secure_settings: Settings, user: str, readable: bool
) -> None:
    """``submit --wait`` as the README's producer reads the results topic; the worker, which
    only writes results, may not read them (found from the outside: the producer could not)."""
    assert produce_as(secure_stack, "worker", secure_settings.topics.results) is None
    read = read_as(secure_stack, user, secure_settings.topics.results)
    if readable:
        assert read == b"probe", read
    else:
        assert isinstance(read, KafkaError), read


def test_share_mode_serves_with_the_readme_acls(
    secure_stack: LocalStack, secure_settings: Settings
) -> None:
    """worker.mode=share as the `worker` user with worker_acls(share=True) and nothing more:
    the start-up checks (group lock, broker delivery limit, probe group), the share group
    itself and the requeue (worker.share_requeue: Write on the requests topic) are allowed, and
    every request is served. The REQUESTS come in one record batch and a batch takes 3 s, one
    at a time: the lock (15 s less 3, less a 5-s batch) leaves no time for the last, which is
    requeued, as the worker."""
    from streamgen.contracts.codec import request_codec
    from streamgen.engine import DiffusionEngine
    from streamgen.ops.share_group import configure_share_group
    from streamgen.telemetry.metrics import Metrics
    from streamgen.telemetry.worker_hooks import WorkerHooks
    from tests.integration.worker.conftest import make_request, with_worker, worker_thread
    from tests.integration.worker.engines import SlowEngine

    settings = with_worker(
        secure_settings,
        mode="share",
        share_lock_margin_s=3.0,
        share_batch_s=5.0,
        max_in_flight=1,
    )
    admin = admin_config(secure_stack)
    grant(admin, "worker", worker_acls(settings.topics, settings.worker.group_id, share=True))
    configure_share_group(admin, settings.worker.group_id, lock_ms=15_000)
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer(
        {
            **secure_stack.kafka_client_config("producer"),
            "bootstrap.servers": secure_stack.bootstrap_servers,
            "linger.ms": 60_000,  # one record batch: nothing leaves before the flush
        }
    )
    for i in range(REQUESTS):
        request = make_request(i)
        producer.produce(settings.topics.requests, codec.encode(request), partition=0)
    assert producer.flush(30) == 0
    hooks = WorkerHooks(Metrics(), worker_id="w", host="h", group_id=settings.worker.group_id)
    engine = SlowEngine(DiffusionEngine(settings.engine), sleep_s=3.0)
    with worker_thread(settings, engine=engine, hooks=hooks) as worker:
        results = results_as_admin(secure_stack, settings)
        assert worker.stop_and_wait() == 0
    assert [r.status for r in results] == ["SUCCEEDED"] * REQUESTS
    requeued = hooks.metrics.registry.get_sample_value("streamgen_share_requeued_total")
    assert requeued is not None and requeued >= 1, "the last request of the batch is requeued"


def test_share_mode_without_write_on_the_requests_topic_stops_start_up(
    secure_stack: LocalStack, secure_settings: Settings
) -> None:
    """worker.share_requeue (on by default) produces copies to the requests topic: a worker
    granted everything share mode needs but that is refused at start, naming the setting,
    rather than retry each copy for ever after a good start."""
    from confluent_kafka.admin import AclOperation

    from streamgen.ops.share_group import configure_share_group
    from tests.integration.worker.conftest import with_worker

    settings = with_worker(secure_settings, mode="share", share_lock_margin_s=3.0)
    admin = admin_config(secure_stack)
    share = worker_acls(settings.topics, settings.worker.group_id, share=True)
    grant(admin, "worker", [g for g in share if g[2] is not AclOperation.WRITE])
    configure_share_group(admin, settings.worker.group_id, lock_ms=15_000)
    assert_refused(settings, "worker.share_requeue", settings.topics.requests, "Write")
