"""The baseline: plain confluent-kafka consume + produce of the same records, same broker.

What any at-least-once Kafka processor must do at the least: a consumer group reads the
requests topic, one small record per input goes to an output topic through an idempotent
producer (the same producer settings as the worker's), and every commit interval the producer
is flushed and then the consumed positions are committed — so, like streamgen, nothing is
committed before its output is acknowledged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from benchmarks.throughput import Clock, Throughput

__all__ = ["raw_consume_produce"]

OUTPUT_VALUE = b"x" * 200  # about the size of a result event


def raw_consume_produce(
    bootstrap_servers: str,
    source_topic: str,
    output_topic: str,
    expected: int,
    *,
    commit_interval_s: float,
    timeout_s: float = 600.0,
) -> Throughput:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    failures: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    clock = Clock()
    consumed = 0
    deadline = time.monotonic() + timeout_s
    last_commit = time.monotonic()
    consumer.subscribe([source_topic])
    try:
        while consumed < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw baseline: {consumed} of {expected} after {timeout_s}s")
            for message in consumer.consume(500, 0.1):
                if message.error():
                    continue
                clock.start_once()
                _produce(producer, output_topic, message.key(), delivered)
                consumed += 1
            producer.poll(0)
            if time.monotonic() - last_commit >= commit_interval_s:
                _commit_behind_outputs(consumer, producer)
                last_commit = time.monotonic()
        _commit_behind_outputs(consumer, producer)
        result = clock.result("raw confluent-kafka consume+produce", consumed)
    finally:
        consumer.close()
    if failures:
        raise RuntimeError(f"raw baseline: {len(failures)} deliveries failed: {failures[0]}")
    return result


def _produce(
    producer: Producer,
    topic: str,
    key: bytes | None,
    on_delivery: Callable[[KafkaError | None, Any], None],
) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=OUTPUT_VALUE, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def _commit_behind_outputs(consumer: Consumer, producer: Producer) -> None:
    if producer.flush(30):
        raise RuntimeError("raw baseline: outputs not acknowledged within 30s")
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        # Nothing consumed since the last commit: there is nothing to commit, not a failure.
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            raise
