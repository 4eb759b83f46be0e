"""The stall watchdog against the real broker (issue 22, item 1): a partition left paused with
records waiting is reported, by a log line and ``streamgen_partition_stalled_seconds``, and
the report ends when it moves again. Partitions served meanwhile are never reported.

The worker is assembled as ``run_worker`` assembles it, with confluent-kafka's own consumer,
and the test pauses one partition behind the worker's back: a pause nothing resumes, the
stall that issue 22 found (whatever its cause, the watchdog must not stay silent).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamgen.engine import DiffusionEngine
from streamgen.settings import Settings
from streamgen.store import open_store
from streamgen.store.encode import encode_image
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.assembly import WorkerParts, assemble
from streamgen.worker.clients import WorkerSeams
from tests.integration.worker.conftest import with_worker

pytestmark = pytest.mark.integration

STEPS = 20_000  # each step polls for at most 0.1 s: a bound far past the 1 s stall timeout


def stalled_seconds(parts: WorkerParts, partition: int) -> float | None:
    return parts.hooks.metrics.registry.get_sample_value(
        "streamgen_partition_stalled_seconds",
        {"topic": parts.loop.tracker.partitions()[0][0], "partition": str(partition)},
    )


def step_until(parts: WorkerParts, done: Any) -> bool:
    for _ in range(STEPS):
        parts.loop.step()
        if done():
            return True
    return False


def test_a_partition_left_paused_with_records_waiting_is_reported_until_it_moves(
    worker_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = with_worker(worker_settings, stall_timeout_s=1.0, max_wait_ms=0)
    settings = replace(settings, worker=replace(settings.worker, worker_id="stall-test"))
    consumers: list[Consumer] = []

    def consumer_factory(config: dict[str, Any]) -> Consumer:
        consumers.append(Consumer(config))
        return consumers[-1]

    hooks = WorkerHooks(
        Metrics(models={"tiny", "default"}), worker_id="stall-test", host="h", group_id="g"
    )
    parts = assemble(
        settings,
        worker_id="stall-test",
        host="h",
        engine=DiffusionEngine(settings.engine),
        store=open_store(settings.store),
        encode=encode_image,
        hooks=hooks,
        seams=WorkerSeams(consumer_factory=consumer_factory),
    )
    topic = settings.topics.requests
    partitions = settings.topics.partitions
    stalled = partitions - 1
    parts.stage.start()
    try:
        assert step_until(parts, lambda: len(parts.loop.tracker.partitions()) == partitions)
        consumers[0].pause([TopicPartition(topic, stalled)])  # behind the worker's back
        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
        for p in range(partitions):
            producer.produce(topic, key=f"k{p}".encode(), value=b"not avro", partition=p)
        assert producer.flush(30) == 0
        caplog.set_level(logging.INFO, logger="streamgen.worker.stalls")

        assert step_until(parts, lambda: stalled_seconds(parts, stalled) is not None)
        assert stalled_seconds(parts, stalled) > settings.worker.stall_timeout_s
        said = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
        assert len(said) == 1, said  # said once per stall, not at every check
        assert said[0].startswith(
            f"partition {topic}[{stalled}] stalled: 1 records waiting and no fetch progress"
        )
        # The other partitions' records were fetched (and dead-lettered: not Avro).
        assert all(stalled_seconds(parts, p) is None for p in range(partitions) if p != stalled)

        consumers[0].resume([TopicPartition(topic, stalled)])
        assert step_until(parts, lambda: stalled_seconds(parts, stalled) is None)
        assert f"partition {topic}[{stalled}] is moving again" in caplog.text
    finally:
        _shut_down(parts)


def _shut_down(parts: WorkerParts) -> None:
    parts.loop.drain()
    parts.consumer.close()
