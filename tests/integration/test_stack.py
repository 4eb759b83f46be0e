"""The local stack against its real processes: Kafka and MinIO started from the cache."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer, ShareConsumer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from minio import Minio

from streamgen.cli import main
from streamgen.local.process import LocalStackError, free_ports
from streamgen.local.stack import LocalStack
from streamgen.ops.topics import PROGRESS_RETENTION_MS, TopicSpec, create_topics, plan_topics
from streamgen.settings import Settings, TopicSettings
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration


def produce(bootstrap_servers: str, topic: str, values: list[bytes]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "acks": "all", "enable.idempotence": True}
    )
    for value in values:
        producer.produce(topic, key=value, value=value)
    assert producer.flush(30) == 0


def test_the_broker_serves_share_groups(stack: LocalStack) -> None:
    """Share groups (KIP-932) are on in the local broker (Kafka 4.2 has them by default; 4.1
    had them off): a share consumer with explicit acknowledgement gets every record."""
    topic, group = f"share-{uuid.uuid4().hex[:8]}", f"share-{uuid.uuid4().hex[:8]}"
    create_topics(stack.bootstrap_servers, [TopicSpec(topic, 2, 1, 3_600_000)])
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    # A new share group starts at the end of the log (share.auto.offset.reset=latest).
    reset = ConfigEntry(
        "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET
    )
    group_config = ConfigResource(ResourceType.GROUP, group, incremental_configs=[reset])
    for future in admin.incremental_alter_configs([group_config]).values():
        future.result(timeout=30)
    sent = {f"r{i}".encode() for i in range(6)}
    produce(stack.bootstrap_servers, topic, sorted(sent))
    consumer = ShareConsumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([topic])
    received: set[bytes] = set()
    deadline = time.monotonic() + 60
    try:
        while received != sent and time.monotonic() < deadline:
            messages = list(consumer.poll(0.5))
            for message in messages:
                assert message.error() is None, message.error()
                received.add(message.value() or b"")
                consumer.acknowledge(message)
            if messages:
                consumer.commit_sync()
    finally:
        consumer.close()
    assert received == sent


def test_up_again_is_a_no_op_that_keeps_the_same_processes(stack: LocalStack) -> None:
    before = {s.name: s.pid for s in stack.status()}
    stack.up()
    after = stack.status()
    assert {s.name: s.pid for s in after} == before
    assert all(s.ready and s.pid is not None for s in after)


def test_a_second_handle_on_the_state_dir_sees_the_same_stack(stack: LocalStack) -> None:
    other = LocalStack(stack.state_dir)
    assert other.bootstrap_servers == stack.bootstrap_servers
    assert other.minio_endpoint == stack.minio_endpoint
    assert [s.pid for s in other.status()] == [s.pid for s in stack.status()]
    with pytest.raises(LocalStackError, match="kafka_port"):
        LocalStack(stack.state_dir, kafka_port=stack.state.kafka_port + 1)


def test_topics_are_created_with_their_partitions_and_retention(stack: LocalStack) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = TopicSettings(
        requests=f"t-{tag}.requests",
        results=f"t-{tag}.results",
        dead_letter=f"t-{tag}.dead-letter",
        cancels=f"t-{tag}.cancels",
        progress=f"t-{tag}.progress",
        partitions=5,
        retention_ms=123_456_789,
    )
    first = create_topics(stack.bootstrap_servers, plan_topics(settings))
    again = create_topics(stack.bootstrap_servers, plan_topics(settings))
    assert [(t.partitions, t.created) for t in first] == [(5, True), *[(1, True)] * 3, (5, True)]
    assert [(t.partitions, t.created) for t in again] == [
        (5, False),
        *[(1, False)] * 3,
        (5, False),
    ]

    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    described = admin.list_topics(timeout=10).topics
    names = [settings.requests, settings.results, settings.dead_letter, settings.cancels]
    assert [len(described[name].partitions) for name in names] == [5, 1, 1, 1]
    assert len(described[settings.progress].partitions) == 5  # keyed by request id
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    policies = {}
    for resource, future in admin.describe_configs(resources).items():
        assert future.result()["retention.ms"].value == "123456789"
        policies[resource.name] = future.result()["cleanup.policy"].value
    # Progress events are worth nothing after their request's result: kept an hour.
    progress = ConfigResource(ConfigResource.Type.TOPIC, settings.progress)
    configs = admin.describe_configs([progress])[progress].result()
    assert configs["retention.ms"].value == str(PROGRESS_RETENTION_MS)
    # Cancels: one record per request id, and none past retention (README, "Cancelling").
    assert policies == {**dict.fromkeys(names[:3], "delete"), settings.cancels: "compact,delete"}


def test_topics_grow_to_more_partitions_when_the_setting_grows(stack: LocalStack) -> None:
    tag = uuid.uuid4().hex[:8]
    small = TopicSettings(
        requests=f"g-{tag}.requests",
        results=f"g-{tag}.results",
        dead_letter=f"g-{tag}.dead-letter",
        cancels=f"g-{tag}.cancels",
        progress=f"g-{tag}.progress",
        partitions=2,
    )
    create_topics(stack.bootstrap_servers, plan_topics(small))
    grown = create_topics(
        stack.bootstrap_servers, plan_topics(TopicSettings(**{**small.__dict__, "partitions": 4}))
    )
    assert grown[0].partitions == 4
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    assert len(admin.list_topics(small.requests, timeout=10).topics[small.requests].partitions) == 4


def test_produce_and_consume_round_trip(stack: LocalStack, topics: TopicSettings) -> None:
    values = [f"record-{i}".encode() for i in range(30)]
    produce(stack.bootstrap_servers, topics.requests, values)
    messages = consume_all(stack.bootstrap_servers, topics.requests, expected=30, timeout=30)
    assert sorted(m.value() or b"" for m in messages) == sorted(values)
    assert {m.partition() for m in messages} <= {0, 1, 2}
    # Without `expected` it reads exactly what is there and returns.
    assert len(consume_all(stack.bootstrap_servers, topics.requests)) == 30


def test_kafka_stopped_and_started_keeps_its_port_and_data(
    stack: LocalStack, topics: TopicSettings
) -> None:
    produce(stack.bootstrap_servers, topics.results, [b"before"])
    old_pid = stack.kafka.pid()
    stack.stop_kafka()
    assert stack.kafka.pid() is None
    assert not stack.kafka.ready()
    stack.start_kafka()
    assert stack.kafka.pid() not in {None, old_pid}
    produce(stack.bootstrap_servers, topics.results, [b"after"])
    messages = consume_all(stack.bootstrap_servers, topics.results, expected=2, timeout=30)
    assert [m.value() for m in messages] == [b"before", b"after"]


def test_a_port_taken_by_a_stranger_gives_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        taken = stranger.getsockname()[1]
        controller, minio, console = free_ports(3)
        local = LocalStack(
            tmp_path,
            kafka_port=taken,
            controller_port=controller,
            minio_port=minio,
            minio_console_port=console,
            registry=False,
        )
        try:
            with pytest.raises(LocalStackError, match=f"port {taken} for Kafka is already in use"):
                local.up()
        finally:
            local.down()


def test_dev_status_and_env_commands_describe_the_running_stack(stack: LocalStack) -> None:
    runner = CliRunner()
    status = runner.invoke(main, ["dev", "--state-dir", str(stack.state_dir), "status"])
    assert status.exit_code == 0, status.output
    # Kafka and MinIO, and the registry too when a registry test of this session started it.
    assert status.output.count("ready") == len(stack.status()) >= 2
    env = runner.invoke(main, ["dev", "--state-dir", str(stack.state_dir), "env"])
    assert f"export STREAMGEN_KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap_servers}" in env.output
    assert f"export STREAMGEN_STORE_ENDPOINT={stack.minio_endpoint}" in env.output


def test_dev_commands_on_an_empty_state_dir_say_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dev", "--state-dir", str(tmp_path), "status"])
    assert result.exit_code == 1
    assert "no local stack" in result.output


def test_topics_create_command_creates_topics_and_bucket(
    stack: LocalStack, stack_settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:8]
    args = [
        "topics", "create",
        "--bootstrap-servers", stack.bootstrap_servers,
        "--partitions", "2",
        "--set", f"topics.requests=cli-{tag}.requests",
        "--set", f"topics.results=cli-{tag}.results",
        "--set", f"topics.dead_letter=cli-{tag}.dead-letter",
        "--set", f"store.url={stack_settings.store.url}",
        "--set", f"store.endpoint={stack.minio_endpoint}",
        "--set", f"store.access_key={stack.minio_access_key}",
        "--set", f"store.secret_key={stack.minio_secret_key}",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"topic  cli-{tag}.requests  2 partition(s)  created" in result.output
    bucket = stack_settings.store.url.removeprefix("s3://")
    client = Minio(
        stack.minio_endpoint,
        access_key=stack.minio_access_key,
        secret_key=stack.minio_secret_key,
        secure=False,
    )
    assert client.bucket_exists(bucket)


def test_topics_create_with_an_impossible_replication_factor_names_the_setting(
    stack: LocalStack,
) -> None:
    tag = uuid.uuid4().hex[:8]
    args = [
        "topics", "create", "--no-bucket",
        "--bootstrap-servers", stack.bootstrap_servers,
        "--replication-factor", "3",
        "--set", f"topics.requests=rf-{tag}.requests",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "topics.replication_factor" in result.output


def test_dev_up_starts_a_stack_with_topics_and_bucket_and_down_purges_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka_port, controller_port, minio_port, console_port, registry_port = free_ports(5)
    state_dir = tmp_path / "state"
    monkeypatch.setenv("STREAMGEN_TOPICS_PARTITIONS", "2")
    runner = CliRunner()
    args = [
        "dev", "--state-dir", str(state_dir), "up",
        "--kafka-port", str(kafka_port), "--controller-port", str(controller_port),
        "--minio-port", str(minio_port), "--minio-console-port", str(console_port),
        "--registry-port", str(registry_port), "--bucket", "demo-images",
    ]  # fmt: skip
    try:
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert f"export STREAMGEN_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka_port}" in result.output
        assert "export STREAMGEN_STORE_URL=s3://demo-images" in result.output
        registry_url = f"http://127.0.0.1:{registry_port}/apis/ccompat/v6"
        assert f"export STREAMGEN_KAFKA_SCHEMA_REGISTRY_URL={registry_url}" in result.output
        assert "Topic   streamgen.requests  2 partition(s)" in result.output
        local = LocalStack(state_dir)
        admin = AdminClient({"bootstrap.servers": local.bootstrap_servers})
        topics = admin.list_topics(timeout=10).topics
        assert len(topics["streamgen.requests"].partitions) == 2
        client = Minio(
            local.minio_endpoint,
            access_key=local.minio_access_key,
            secret_key=local.minio_secret_key,
            secure=False,
        )
        assert client.bucket_exists("demo-images")
    finally:
        down = runner.invoke(main, ["dev", "--state-dir", str(state_dir), "down", "--purge"])
    assert down.exit_code == 0, down.output
    assert "stopped: kafka, minio, registry" in down.output
    assert not state_dir.exists()


def test_dev_up_in_share_mode_configures_the_share_group(stack: LocalStack) -> None:
    """STREAMGEN_WORKER_MODE=share: `dev up` (again, on the running stack) sets the group's
    offset reset to earliest and its record lock, which a worker then reads at start-up."""
    group = f"share-up-{uuid.uuid4().hex[:8]}"
    env = {"STREAMGEN_WORKER_MODE": "share", "STREAMGEN_WORKER_GROUP_ID": group}
    result = CliRunner().invoke(main, ["dev", "--state-dir", str(stack.state_dir), "up"], env=env)
    assert result.exit_code == 0, result.output
    assert f"Share group {group}: from the earliest record, lock 60 s" in result.output
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    (future,) = admin.describe_configs([ConfigResource(ResourceType.GROUP, group)]).values()
    configs = future.result(timeout=30)
    assert configs["share.auto.offset.reset"].value == "earliest"
    assert configs["share.record.lock.duration.ms"].value == "60000"
