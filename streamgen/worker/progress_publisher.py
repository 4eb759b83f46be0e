"""The progress publisher thread: notes from the worker's threads → progress events on
``topics.progress``, best effort.

Its own producer, not the results' ``Publisher``: results are retried for ever because an
offset waits on them, progress is advisory, so a slow or absent broker must cost a progress
event (counted in ``streamgen_progress_events_dropped_total``), never a result's place in a
queue. Nothing here raises into the worker: every failure is a dropped event and a log line.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from streamgen import kafka_config
from streamgen.contracts.progress import GenerationProgress
from streamgen.settings import Settings
from streamgen.telemetry.progress_metrics import ProgressMetrics
from streamgen.worker.progress import QUEUE_NOTES, ProgressNote, ProgressReporter

__all__ = [
    "ProgressProducer",
    "ProgressProducerFactory",
    "ProgressPublisher",
    "progress_producer_config",
]

log = logging.getLogger(__name__)

# How long the thread waits for a note before serving delivery reports anyway.
IDLE_POLL_S = 0.1
# At stop, how long queued events may take to reach the broker: a stopping worker must not
# wait on advisory events (what is left is counted as unsent).
FLUSH_S = 2.0


class ProgressProducer(Protocol):
    """What the thread needs of confluent-kafka's ``Producer``."""

    def produce(
        self, topic: str, value: bytes, key: bytes, *, on_delivery: Callable[[Any, Any], None]
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


ProgressProducerFactory = Callable[[dict[str, Any]], ProgressProducer]


def progress_producer_config(settings: Settings, worker_id: str) -> dict[str, Any]:
    return kafka_config.producer_config(
        settings.kafka,
        defaults={
            "client.id": f"{worker_id}-progress",
            # The leader's ack is enough for an advisory event; a few ms of linger batches a
            # batch's notes into one request.
            "acks": 1,
            "linger.ms": 20,
            # Given up on after this long (counted as broker): an event minutes late is noise.
            "message.timeout.ms": 10_000,
            "queue.buffering.max.messages": 100_000,
        },
        route_logs=True,
    )


class ProgressPublisher(threading.Thread):
    def __init__(
        self,
        producer: ProgressProducer,
        *,
        topic: str,
        worker_id: str,
        encode: Callable[[GenerationProgress], bytes],
        metrics: ProgressMetrics,
        notes: queue.Queue[ProgressNote] | None = None,
    ) -> None:
        """``notes``: where the reporters put their notes; by default a queue of QUEUE_NOTES."""
        super().__init__(name="streamgen-progress", daemon=True)
        self._producer = producer
        self._topic = topic
        self._worker_id = worker_id
        self._encode = encode
        self._metrics = metrics
        self._notes = notes if notes is not None else queue.Queue[ProgressNote](QUEUE_NOTES)
        self._stopping = threading.Event()
        self._warned = False

    def reporter(self, interval_s: float) -> ProgressReporter:
        """What the consumer and GPU threads report through (never blocking)."""
        return ProgressReporter(
            self._notes, interval_s=interval_s, on_dropped=self._metrics.event_dropped
        )

    def close(self, timeout: float = FLUSH_S) -> None:
        """Publish what is queued, give the broker up to ``timeout`` for it, then stop."""
        self._stopping.set()
        self.join(timeout + 1.0)

    def run(self) -> None:
        while not (self._stopping.is_set() and self._notes.empty()):
            try:
                note = self._notes.get(timeout=IDLE_POLL_S)
            except queue.Empty:
                note = None
            try:
                if note is not None:
                    self._publish(note)
                self._producer.poll(0)  # delivery reports: published / dropped
            except Exception:  # never into the worker: a progress event is advisory
                log.exception("progress publisher: a note was lost")
        try:
            unsent = self._producer.flush(FLUSH_S)
        except Exception:
            log.exception("progress publisher: flush failed")
            return
        for _ in range(unsent):
            self._metrics.event_dropped("unsent")

    def _publish(self, note: ProgressNote) -> None:
        at = datetime.fromtimestamp(note.at, UTC)
        for request_id in note.request_ids:
            event = GenerationProgress(
                request_id, note.stage, at, self._worker_id, note.step, note.steps
            )
            try:
                value = self._encode(event)
                self._producer.produce(
                    self._topic, value=value, key=request_id.encode(), on_delivery=self._delivered
                )
            except BufferError:  # librdkafka's queue is full: the broker is slow or away
                self._metrics.event_dropped("producer_full")
            except Exception as exc:
                self._metrics.event_dropped("error")
                self._warn_once("cannot publish a progress event", exc)

    def _delivered(self, error: Any, message: Any) -> None:
        if error is None:
            self._metrics.event_published()
            return
        self._metrics.event_dropped("broker")
        self._warn_once(f"progress event not delivered to {self._topic}", error)

    def _warn_once(self, what: str, error: object) -> None:
        # One line per worker, then debug: a broker outage must not flood the log with
        # advisory events (the dropped counter says how many).
        log.log(logging.DEBUG if self._warned else logging.WARNING, "%s: %s", what, error)
        self._warned = True
