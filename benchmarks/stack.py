"""The real local stack for a benchmark run: broker and MinIO on free ports, fresh topics."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Producer

from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.local.kafka import KafkaBroker
from streamgen.local.process import free_ports
from streamgen.local.stack import LocalStack
from streamgen.ops.topics import create_topics, plan_topics
from streamgen.settings import KafkaSettings, Settings, StoreSettings, TopicSettings

__all__ = ["bench_settings", "fresh_topics", "prefill", "running_stack"]


@contextmanager
def running_stack() -> Iterator[LocalStack]:
    """A broker and a MinIO server of their own, in a temp state dir, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="streamgen-bench-") as state_dir:
        kafka_port, controller_port, minio_port, console_port = free_ports(4)
        stack = LocalStack(
            Path(state_dir) / "stack",
            kafka_port=kafka_port,
            controller_port=controller_port,
            minio_port=minio_port,
            minio_console_port=console_port,
            # Benchmarks measure single-object framing; a registry would only take memory.
            registry=False,
        )
        try:
            stack.up()
            yield stack
        finally:
            stack.down()


def fresh_topics(stack: LocalStack | KafkaBroker, partitions: int, tag: str = "") -> TopicSettings:
    tag = tag or uuid.uuid4().hex[:8]
    topics = TopicSettings(
        requests=f"bench-{tag}.requests",
        results=f"bench-{tag}.results",
        dead_letter=f"bench-{tag}.dead-letter",
        partitions=partitions,
        replication_factor=1,
        retention_ms=3_600_000,
    )
    create_topics(stack.bootstrap_servers, plan_topics(topics))
    return topics


def bench_settings(stack: LocalStack, topics: TopicSettings, store_url: str) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.bootstrap_servers),
        topics=topics,
        store=StoreSettings(
            url=store_url,
            endpoint=stack.minio_endpoint,
            access_key=stack.minio_access_key,
            secret_key=stack.minio_secret_key,
            create_bucket=True,  # each benchmark run writes to a bucket of its own
        ),
    )


def prefill(settings: Settings, requests: Iterable[GenerationRequest]) -> int:
    """Publish the requests (keyed by id, as ``streamgen submit`` does); return how many."""
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    count = 0
    for request in requests:
        while True:
            try:
                producer.produce(
                    settings.topics.requests,
                    key=request.request_id.encode(),
                    value=codec.encode(request),
                )
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries make room
        producer.poll(0)
        count += 1
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"prefill: {left} of {count} requests not delivered within 60s")
    return count
