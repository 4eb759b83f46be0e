"""`streamgen lag` against the real broker: known unprocessed requests, known throughput."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer, TopicPartition

from streamgen.cli import main
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult, Timings, WorkerIdentity
from streamgen.ops.lag_probe import LagError, LagProbe
from streamgen.settings import Settings

pytestmark = pytest.mark.integration

PROCESSED_COST = 10 * 64 * 64 * 1  # steps x width x height x images
UNPROCESSED_COST = 20 * 64 * 64 * 2
WAITING_S = 120  # the unprocessed records were produced this long ago


def request(rid: str, *, steps: int, num_images: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=rid,
        prompt="p",
        model="tiny",
        width=64,
        height=64,
        steps=steps,
        num_images=num_images,
    )


def seed(settings: Settings, group: str) -> dict[int, list[str]]:
    """Partition 0: 2 processed + 3 waiting; partition 1: 3 waiting, never committed;
    partition 2: empty. Results for the 2 processed ones: 2 GPU-seconds for a batch of 2."""
    topics = settings.topics
    codec = request_codec(settings.kafka, topics.requests)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    old_ms = int(time.time() * 1000) - WAITING_S * 1000
    ids: dict[int, list[str]] = {0: [], 1: []}
    for partition, processed, waiting in ((0, 2, 3), (1, 0, 3)):
        for i in range(processed + waiting):
            rid = f"r{partition}-{i}-{uuid.uuid4().hex[:6]}"
            req = (
                request(rid, steps=10, num_images=1)
                if i < processed
                else request(rid, steps=20, num_images=2)
            )
            producer.produce(
                topics.requests,
                key=rid.encode(),
                value=codec.encode(req),
                partition=partition,
                timestamp=old_ms + i,
            )
            ids[partition].append(rid)
    now = datetime.now(UTC)
    results = result_codec(settings.kafka, topics.results)
    for rid in ids[0][:2]:
        result = GenerationResult(
            request_id=rid,
            status="SUCCEEDED",
            worker=WorkerIdentity("w", "h"),
            timings=Timings(finished_at=now, gpu_seconds=2.0, batch_size=2),
            width=64,
            height=64,
        )
        producer.produce(topics.results, key=rid.encode(), value=results.encode(result))
    assert producer.flush(30) == 0
    committer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    committer.commit(offsets=[TopicPartition(topics.requests, 0, 2)], asynchronous=False)
    committer.close()
    return ids


def broker_view(settings: Settings, group: str) -> dict[int, tuple[int, int]]:
    """(committed, log end) per partition as a group member's consumer API reports them."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    try:
        tps = [TopicPartition(settings.topics.requests, p) for p in range(3)]
        committed = consumer.committed(tps, timeout=10)
        return {
            tp.partition: (
                tp.offset,
                consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[
                    1
                ],
            )
            for tp in committed
        }
    finally:
        consumer.close()


def test_lag_matches_the_broker_and_weights_the_backlog(stack_settings: Settings) -> None:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    seed(stack_settings, group)
    report = LagProbe(stack_settings).snapshot(
        group, stack_settings.topics.requests, results_topic=stack_settings.topics.results
    )
    rows = {p.partition: p for p in report.partitions}
    broker = broker_view(stack_settings, group)
    for partition, (committed, log_end) in broker.items():
        assert rows[partition].log_end == log_end
        assert rows[partition].lag == log_end - max(committed, 0)
    assert [rows[p].lag for p in range(3)] == [3, 3, 0]
    assert rows[0].committed == 2 and rows[1].committed is None
    assert report.total_lag == 6
    assert rows[0].lag_seconds(report.taken_at_ms) >= WAITING_S  # type: ignore[operator]
    assert rows[2].lag_seconds(report.taken_at_ms) == 0.0
    # Throughput: 2 results x PROCESSED_COST in 2 x (2.0 / 2) GPU-seconds.
    assert report.throughput == pytest.approx(PROCESSED_COST / 1.0)
    backlog = report.backlog
    assert backlog.pixel_steps == 6 * UNPROCESSED_COST
    assert backlog.gpu_seconds == pytest.approx(6 * UNPROCESSED_COST / PROCESSED_COST)
    assert backlog.drain_rate is not None and backlog.drain_rate > 0
    assert backlog.drain_seconds == pytest.approx(6 / backlog.drain_rate)


def test_sampling_extrapolates_from_a_few_records(stack_settings: Settings) -> None:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    seed(stack_settings, group)
    report = LagProbe(stack_settings).snapshot(
        group, stack_settings.topics.requests, results_topic=None, sample=1
    )
    rows = {p.partition: p for p in report.partitions}
    assert rows[0].sampled == 1 and rows[1].sampled == 1
    assert report.backlog.pixel_steps == 6 * UNPROCESSED_COST
    assert report.throughput is None and report.backlog.gpu_seconds is None


def test_owner_is_the_member_holding_the_partition(stack_settings: Settings) -> None:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    seed(stack_settings, group)
    assigned: list[TopicPartition] = []
    member = Consumer(
        {
            "bootstrap.servers": stack_settings.kafka.bootstrap_servers,
            "group.id": group,
            "client.id": "probe-member",
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
        }
    )
    member.subscribe(
        [stack_settings.topics.requests], on_assign=lambda _c, tps: assigned.extend(tps)
    )
    try:
        deadline = time.monotonic() + 30
        while not assigned and time.monotonic() < deadline:
            member.poll(0.2)
        assert assigned, "the member never got an assignment"
        report = LagProbe(stack_settings).snapshot(
            group, stack_settings.topics.requests, results_topic=None, sample=0
        )
    finally:
        member.close()
    # The broker reports the member's address as it saw the connection.
    assert {p.owner for p in report.partitions} == {"probe-member@127.0.0.1"}


def test_cli_json_and_table(stack_settings: Settings) -> None:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    seed(stack_settings, group)
    t = stack_settings.topics
    args = [
        "lag",
        "--bootstrap-servers",
        stack_settings.kafka.bootstrap_servers,
        "--group",
        group,
        "--topic",
        t.requests,
        "--results-topic",
        t.results,
    ]
    runner = CliRunner()
    out = runner.invoke(main, [*args, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["total_lag"] == 6
    assert [p["lag"] for p in data["partitions"]] == [3, 3, 0]
    assert data["backlog_gpu_seconds"] == pytest.approx(6 * UNPROCESSED_COST / PROCESSED_COST)
    table = runner.invoke(main, args)
    assert table.exit_code == 0, table.output
    assert "total lag 6 messages" in table.stdout
    assert "GPU-seconds" in table.stdout


def test_missing_topic_is_a_clear_error(stack_settings: Settings) -> None:
    with pytest.raises(LagError, match="topic 'no-such-topic' not found"):
        LagProbe(stack_settings).snapshot("g", "no-such-topic", results_topic=None)
