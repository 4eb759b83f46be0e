"""`streamgen lag` for a share group (worker.mode=share) against the real broker: the start
offsets come from the broker's DescribeShareGroupOffsets, asked by streamgen's own client."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest
from click.testing import CliRunner
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer

from streamgen.cli import main
from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.kafka_protocol.share_offsets import ShareOffset, share_offsets
from streamgen.ops.lag_probe import LagProbe
from streamgen.ops.share_group import configure_share_group
from streamgen.settings import Settings

pytestmark = pytest.mark.integration


def share_settings(settings: Settings) -> Settings:
    group = f"lag-share-{uuid.uuid4().hex[:8]}"
    worker = dataclasses.replace(settings.worker, mode="share", group_id=group)
    return dataclasses.replace(settings, worker=worker)


def login(settings: Settings) -> dict[str, str]:
    return {"bootstrap.servers": settings.kafka.bootstrap_servers, **settings.kafka.client_config}


def produce(settings: Settings, counts: dict[int, int]) -> None:
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer({**login(settings), "acks": "all"})
    for partition, count in counts.items():
        for i in range(count):
            rid = f"s{partition}-{i}-{uuid.uuid4().hex[:6]}"
            request = GenerationRequest(request_id=rid, prompt="p", model="tiny", steps=10)
            producer.produce(
                settings.topics.requests,
                key=rid.encode(),
                value=codec.encode(request),
                partition=partition,
            )
    assert producer.flush(30) == 0


def accept_first(settings: Settings, accept: dict[int, int], seen: int) -> None:
    """A share consumer of the group that accepts the first ``accept[p]`` records of each
    partition and releases every other one it is handed, until it has seen ``seen``."""
    configure_share_group(login(settings), settings.worker.group_id, lock_ms=30_000)
    consumer = ShareConsumer(
        {
            **login(settings),
            "group.id": settings.worker.group_id,
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([settings.topics.requests])
    handled: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 60
    try:
        while len(handled) < seen and time.monotonic() < deadline:
            messages = list(consumer.poll(0.5))
            for message in messages:
                assert message.error() is None, message.error()
                partition, offset = message.partition() or 0, message.offset() or 0
                handled.add((partition, offset))
                kind = (
                    AcknowledgeType.ACCEPT
                    if offset < accept.get(partition, 0)
                    else (AcknowledgeType.RELEASE)
                )
                consumer.acknowledge(message, kind)
            if messages:
                consumer.commit_sync()
    finally:
        consumer.close()
    assert len(handled) >= seen


def test_share_lag_is_the_log_past_the_start_offset(stack_settings: Settings) -> None:
    settings = share_settings(stack_settings)
    topic = settings.topics.requests
    tps = [(topic, p) for p in range(3)]
    before = share_offsets(settings.kafka, settings.worker.group_id, tps)
    assert before == dict.fromkeys(tps, ShareOffset())  # a group the broker does not know yet
    produce(settings, {0: 5, 1: 3})
    accept_first(settings, {0: 2, 1: 3}, seen=8)
    found = share_offsets(settings.kafka, settings.worker.group_id, tps)
    # Partition 0: 0 and 1 accepted, 2..4 released (available again); partition 1: all done.
    assert [found[tp].lag for tp in tps] == [3, 0, None]
    assert found[(topic, 2)] == ShareOffset()  # never read
    assert all(0 <= (found[tp].start or 0) <= 3 for tp in tps)
    report = LagProbe(settings).snapshot(settings.worker.group_id, topic, results_topic=None)
    rows = {p.partition: p for p in report.partitions}
    assert [rows[p].lag for p in range(3)] == [3, 0, 0]
    assert all(not row.owner for row in rows.values())
    assert report.total_lag == 3
    assert report.backlog.pixel_steps == 3 * 10 * 512 * 512  # the three released requests


def test_streamgen_lag_reports_a_share_group(stack_settings: Settings) -> None:
    settings = share_settings(stack_settings)
    produce(settings, {2: 4})
    accept_first(settings, {2: 1}, seen=4)
    result = CliRunner().invoke(
        main,
        [
            "lag",
            "--bootstrap-servers",
            settings.kafka.bootstrap_servers,
            "--topic",
            settings.topics.requests,
            "--group",
            settings.worker.group_id,
            "--set",
            "worker.mode=share",
            "--set",
            f"topics.results={settings.topics.results}",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[0])
    by_partition = {p["partition"]: p for p in report["partitions"]}
    assert by_partition[2]["committed"] == 1 and by_partition[2]["lag"] == 3


def test_a_share_worker_exports_the_brokers_backlog(stack_settings: Settings) -> None:
    from prometheus_client import CollectorRegistry

    from streamgen.telemetry.share_metrics import ShareMetrics
    from streamgen.worker.lifecycle import Lifecycle, Phase
    from streamgen.worker.share_backlog import watch_share_backlog

    settings = share_settings(stack_settings)
    produce(settings, {1: 6})
    accept_first(settings, {1: 2}, seen=6)
    registry = CollectorRegistry()
    lifecycle = Lifecycle.joining()
    thread = watch_share_backlog(
        settings.kafka, settings.worker.group_id, ShareMetrics(registry), lifecycle, 0.2
    )
    labels = {"topic": settings.topics.requests, "partition": "1"}
    deadline = time.monotonic() + 30
    while registry.get_sample_value("streamgen_share_backlog_messages", labels) is None:
        assert time.monotonic() < deadline, "no backlog exported in 30 s"
        time.sleep(0.1)
    assert registry.get_sample_value("streamgen_share_backlog_messages", labels) == 4
    lifecycle.advance(Phase.CLOSING)
    thread.join(5)
    assert not thread.is_alive()


def test_a_sasl_mechanism_it_does_not_speak_is_refused_naming_it(stack_settings: Settings) -> None:
    from streamgen.errors import ConfigError
    from streamgen.kafka_protocol.link import KafkaLink

    host, _, port = stack_settings.kafka.bootstrap_servers.rpartition(":")
    login = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI"}
    with pytest.raises(ConfigError, match=r"sasl\.mechanism GSSAPI is not one") as caught:
        KafkaLink(host, int(port), login, 10.0)
    assert caught.value.setting == "kafka.client_config"
    no_password = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512"}
    with pytest.raises(ConfigError, match=r"needs sasl\.username and sasl\.password"):
        KafkaLink(host, int(port), no_password, 10.0)
