"""Priority lanes on the real broker and MinIO: a worker with a bulk backlog serves an
interactive request before the backlog drains, and every bulk request still completes.

Evidence is the order of batches the engine ran, never wall-clock bounds: the first batch is
held until the worker has admitted the interactive request, so what follows is the worker's
choice alone.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.engine import DiffusionEngine
from streamgen.exit_codes import EXIT_CONFIG
from streamgen.lanes import lane_topic
from streamgen.ops.topics import create_topics, plan_topics
from streamgen.settings import Lane, Settings
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.run import run_worker
from streamgen.worker.work_item import WorkItem
from tests.integration.worker.conftest import (
    make_request,
    read_dead_letters,
    read_results,
    wait_until,
    with_worker,
    worker_thread,
)
from tests.integration.worker.engines import HoldFirstBatch

pytestmark = pytest.mark.integration

LANES = (Lane("interactive", 0.1), Lane("default", 0.3), Lane("bulk", 0.1))
BULK = 40  # ten batches of four


class WatchAdmission(WorkerHooks):
    """The real hooks; also says when the request ``watched`` was admitted to the batcher."""

    watched = ""
    seen: threading.Event

    def admitted(self, item: WorkItem) -> None:
        super().admitted(item)
        if item.request.request_id == self.watched:
            self.seen.set()


def publish_to_lane(settings: Settings, lane: str, requests: list[GenerationRequest]) -> None:
    topic = lane_topic(settings.topics, lane)
    codec = request_codec(settings.kafka, topic)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    for request in requests:
        producer.produce(topic, key=request.request_id.encode(), value=codec.encode(request))
    assert producer.flush(30) == 0


def committed(settings: Settings, lane: str) -> int:
    """How many records of the lane the group has committed, over its partitions."""
    topic = lane_topic(settings.topics, lane)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": settings.worker.group_id,
        }
    )
    try:
        asked = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(asked, timeout=10))
    finally:
        consumer.close()


def test_an_interactive_request_overtakes_a_bulk_backlog_and_no_bulk_request_is_lost(
    worker_settings: Settings,
) -> None:
    topics = replace(worker_settings.topics, lanes=LANES)
    create_topics(worker_settings.kafka.bootstrap_servers, plan_topics(topics))
    settings = with_worker(replace(worker_settings, topics=topics), max_in_flight=8)
    bulk = [make_request(i) for i in range(BULK)]
    urgent = make_request(999)  # the same shape: it may share a batch with bulk rows
    publish_to_lane(settings, "bulk", bulk)
    hooks = WatchAdmission.from_settings(
        settings, worker_id="lanes-test", host=socket.gethostname()
    )
    hooks.watched, hooks.seen = urgent.request_id, threading.Event()
    engine = HoldFirstBatch(DiffusionEngine(settings.engine), release=hooks.seen)

    with worker_thread(settings, engine=engine, hooks=hooks) as worker:
        assert engine.started.wait(120), "the worker never started a batch"
        publish_to_lane(settings, "interactive", [urgent])
        results = read_results(settings, expected=BULK + 1, timeout=300)
        assert wait_until(lambda: committed(settings, "bulk") == BULK, 60)
        assert wait_until(lambda: committed(settings, "interactive") == 1, 60)
        assert worker.stop_and_wait() == 0

    # Ordering: the interactive request ran in the batch right after the held one (the one
    # running when it arrived), with a bulk backlog of nine batches still behind it.
    (where,) = [i for i, batch in enumerate(engine.batches) if urgent.request_id in batch]
    assert where == 1, f"interactive in batch {where} of {engine.batches}"
    assert engine.batches[1][0] == urgent.request_id  # its lane first, bulk rows fill the rest
    assert sum(len(b) for b in engine.batches[2:]) >= BULK - 4 - 3, engine.batches
    # Nothing lost, nothing twice: every request one SUCCEEDED result, no dead letter.
    answered = Counter(r.request_id for r in read_results(settings))
    assert answered == Counter({r.request_id: 1 for r in [*bulk, urgent]})
    assert all(r.status == "SUCCEEDED" for r in results), results
    assert read_dead_letters(settings) == []


def test_a_lane_topic_that_does_not_exist_stops_the_start_naming_the_setting(
    worker_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The lanes' topics were never created: exit 4 at the broker check, before the model
    loads, with the one line naming topics.lanes and the missing topic."""
    settings = replace(worker_settings, topics=replace(worker_settings.topics, lanes=LANES))
    with caplog.at_level(logging.INFO):
        code = run_worker(settings, install_signal_handlers=False, stop=threading.Event())
    assert code == EXIT_CONFIG
    [line] = [r.getMessage() for r in caplog.records if "cannot start" in r.getMessage()]
    assert "topics.lanes" in line and f"{settings.topics.requests}.interactive" in line, line
    assert not any("loading model" in r.getMessage() for r in caplog.records)
