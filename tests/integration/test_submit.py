"""`streamgen submit` against the real broker and MinIO: what lands on the topic, --wait's
summary over results the test itself publishes, --download, and the timeout path."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not declared
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from streamgen.cli import main
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.result import (
    GenerationResult,
    ResultError,
    Timings,
    WorkerIdentity,
)
from streamgen.settings import Settings
from streamgen.store import open_store
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

WORKER = WorkerIdentity("test-worker", "test-host")


@pytest.fixture
def settings(stack_settings: Settings) -> Settings:
    """The stack's settings once this test's fresh topics have leaders: reading offsets of a
    partition whose leader is still being elected fails with NOT_LEADER_FOR_PARTITION."""
    consumer = Consumer(
        {"bootstrap.servers": stack_settings.kafka.bootstrap_servers, "group.id": "leaders"}
    )
    try:
        for topic in (stack_settings.topics.requests, stack_settings.topics.results):
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                for _ in range(100):
                    try:
                        consumer.get_watermark_offsets(TopicPartition(topic, partition), 5)
                        break
                    except KafkaException:
                        time.sleep(0.1)
    finally:
        consumer.close()
    return stack_settings


def kafka_args(settings: Settings) -> list[str]:
    return [
        "--bootstrap-servers",
        settings.kafka.bootstrap_servers,
        "--topic",
        settings.topics.requests,
        "--results-topic",
        settings.topics.results,
    ]


def produce_results(settings: Settings, results: list[GenerationResult]) -> None:
    codec = result_codec(settings.kafka, settings.topics.results)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for result in results:
        producer.produce(
            settings.topics.results, key=result.request_id.encode(), value=codec.encode(result)
        )
    assert producer.flush(10) == 0


def start_submit(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """The real command line in its own process, so the test can answer while it waits."""
    env = {
        **os.environ,
        **(env or {}),
        "STREAMGEN_STORE_ENDPOINT": settings.store.endpoint,
        "STREAMGEN_STORE_ACCESS_KEY": settings.store.access_key,
        "STREAMGEN_STORE_SECRET_KEY": settings.store.secret_key,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "streamgen", "submit", *kafka_args(settings), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_submit_count_puts_decodable_requests_keyed_by_their_ids(settings: Settings) -> None:
    result = CliRunner().invoke(
        main,
        [
            "submit",
            *kafka_args(settings),
            "--prompt",
            "a ceramic vase",
            "--count",
            "5",
            "--width",
            "64",
            "--height",
            "64",
            "--seed",
            "10",
            "--metadata",
            "batch=it-1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(printed) == 5
    messages = consume_all(settings.kafka.bootstrap_servers, settings.topics.requests, expected=5)
    assert len(messages) == 5
    codec = request_codec(settings.kafka, settings.topics.requests)
    by_id = {}
    for msg in messages:
        request = codec.decode(msg.value())
        assert msg.key() == request.request_id.encode()
        by_id[request.request_id] = (request, msg.partition(), msg.offset())
    assert set(by_id) == {p["request_id"] for p in printed}
    for p in printed:
        request, partition, offset = by_id[p["request_id"]]
        assert (p["partition"], p["offset"]) == (partition, offset)
        assert (request.prompt, request.width, request.metadata) == (
            "a ceramic vase",
            64,
            {"batch": "it-1"},
        )
        assert request.created_at is not None
    assert sorted(r.seed or 0 for r, _, _ in by_id.values()) == [10, 11, 12, 13, 14]


def test_wait_summarizes_results_and_downloads_images(settings: Settings, tmp_path: Path) -> None:
    ids = ["wait-1", "wait-2", "wait-3"]
    # A result already on the topic before submitting is not one of this batch's answers.
    produce_results(
        settings,
        [GenerationResult("wait-1", "FAILED", WORKER, error=ResultError("OLD", "stale", "x"))],
    )
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps({"request_id": i, "prompt": f"p {i}"}) + "\n" for i in ids))
    out_dir = tmp_path / "images"
    proc = start_submit(
        settings,
        "--jsonl",
        str(batch),
        "--wait",
        "--timeout",
        "60",
        "--store",
        settings.store.url,
        "--download",
        str(out_dir),
    )
    try:
        # A generous timeout: the subprocess imports everything first, on a busy 2-core box.
        requests = consume_all(
            settings.kafka.bootstrap_servers,
            settings.topics.requests,
            expected=3,
            timeout=90,
        )
        assert sorted(m.key() or b"" for m in requests) == [i.encode() for i in ids]
        store = open_store(settings.store)
        store.ensure_ready()
        png = b"\x89PNG fake image bytes"
        stored = store.put("wait-1/0.png", png, index=0, content_type="image/png", metadata={})
        t0 = datetime(2030, 1, 1, tzinfo=UTC)

        def timings(seconds: float) -> Timings:
            return Timings(created_at=t0, finished_at=t0 + timedelta(seconds=seconds))

        produce_results(
            settings,
            [
                GenerationResult(
                    "wait-1", "SUCCEEDED", WORKER, timings=timings(2.0), images=(stored,)
                ),
                GenerationResult("wait-2", "SUCCEEDED", WORKER, timings=timings(4.0)),
                GenerationResult(
                    "wait-3",
                    "FAILED",
                    WORKER,
                    timings=timings(1.0),
                    error=ResultError("INVALID_REQUEST", "width=100 is invalid", "validate"),
                ),
                GenerationResult("someone-else", "SUCCEEDED", WORKER),
            ],
        )
        stdout, stderr = proc.communicate(timeout=90)
    except BaseException:
        proc.kill()
        print("submit's output:", *proc.communicate(), sep="\n")
        raise
    assert proc.returncode == 3, stderr  # some requests FAILED
    lines = stdout.splitlines()
    assert lines[:3] == ids
    assert "succeeded: 2" in lines
    assert "failed: 1 (INVALID_REQUEST x1)" in lines
    assert "  wait-3: INVALID_REQUEST: width=100 is invalid" in lines
    assert "latency (created -> finished): p50 2.000s  p95 4.000s  over 3" in lines
    assert (out_dir / "wait-1-0.png").read_bytes() == png
    assert hashlib.sha256(png).hexdigest() == stored.sha256
    assert "downloaded: 1 image(s)" in stderr


def test_records_carry_the_w3c_trace_context_when_tracing_is_on(settings: Settings) -> None:
    proc = start_submit(
        settings, "--prompt", "a kite", "--count", "2", env={"OTEL_TRACES_EXPORTER": "console"}
    )
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert '"name": "send ' in stdout  # the console exporter printed the producer spans
    messages = consume_all(settings.kafka.bootstrap_servers, settings.topics.requests, expected=2)
    assert len(messages) == 2
    for msg in messages:
        traceparent = dict(msg.headers() or [])["traceparent"]
        assert isinstance(traceparent, bytes)
        assert re.fullmatch(rb"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", traceparent)


def test_wait_timeout_exits_non_zero_naming_the_missing_ids(settings: Settings) -> None:
    proc = start_submit(settings, "--prompt", "a kite", "--count", "2", "--wait", "--timeout", "2")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 4, stderr
    ids = stdout.splitlines()[:2]
    assert len(ids) == 2
    missing = stdout[stdout.index("missing (no result before the timeout): 2") :]
    assert all(f"  {rid}" in missing for rid in ids)


def test_missing_topic_fails_before_publishing(settings: Settings) -> None:
    result = CliRunner().invoke(
        main,
        [
            "submit",
            "--bootstrap-servers",
            settings.kafka.bootstrap_servers,
            "--topic",
            "no-such-topic",
            "--prompt",
            "x",
        ],
    )
    assert result.exit_code == 1
    assert "topic 'no-such-topic'" in result.output


def test_undelivered_requests_fail_loudly_naming_their_ids(
    settings: Settings, tmp_path: Path
) -> None:
    # The broker refuses record batches over 2 KiB on this topic: a real delivery failure.
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        settings.topics.requests,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes",
                "2048",
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=10)
    batch = tmp_path / "batch.jsonl"
    big = {"request_id": "too-big", "prompt": "p" * 1900, "negative_prompt": "n" * 1900}
    batch.write_text(json.dumps(big) + "\n")
    result = CliRunner().invoke(main, ["submit", *kafka_args(settings), "--jsonl", str(batch)])
    assert result.exit_code == 1
    assert "1 request(s) were not delivered: too-big: " in result.output
    assert "too large" in result.output.lower()
