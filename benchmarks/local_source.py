"""The worker's own stages, fed from memory instead of a Kafka broker.

For machines with no broker (the GPU machine has no Java): encoded request bytes go through the
worker's real classes — :class:`Intake` (Avro decode + validation), the :class:`OffsetTracker`,
the :class:`WorkQueue` / :class:`MicroBatcher`, the :class:`GenerationStage` GPU thread, the
:class:`ImageWriter` on the output pool (encode + object store) and the :class:`OutcomeSink`
(result events). Only two things stand in for Kafka, and reports say so:

- :class:`LocalFeed` plays steps 1 and 6 of ``ConsumerLoop.step``: it hands out records (all at
  once like a pre-filled topic, or each at its due time) while in-flight work is below
  ``max_in_flight``, and completes tickets as outcomes become durable;
- :class:`MemoryResults` is where result events and dead letters go: it keeps them and
  acknowledges at once, so "durable" here means "stored and encoded", not "on a broker".

The Kafka side's cost is measured apart, on CPU, by the pipeline benchmark.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from streamgen.contracts.codec import result_codec
from streamgen.contracts.result import WorkerIdentity
from streamgen.engine.types import Engine, Shape
from streamgen.settings import Settings
from streamgen.store.base import ObjectStore
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.assembly import intake_for
from streamgen.worker.backoff import Backoff
from streamgen.worker.batcher import MicroBatcher
from streamgen.worker.generation import GenerationStage
from streamgen.worker.intake import Intake, Rejected
from streamgen.worker.loop import Durable, Fatal
from streamgen.worker.offsets import OffsetTracker
from streamgen.worker.outputs import OutcomeSink, OutcomeSummary
from streamgen.worker.ownership import Ownership
from streamgen.worker.publisher import OnRejected
from streamgen.worker.storage import EncodeImage, ImageWriter, StoreRetry
from streamgen.worker.work_item import SourceRecord, WorkItem
from streamgen.worker.work_queue import WorkQueue

__all__ = ["LocalFeed", "LocalRun", "MemoryResults", "TimedRecord"]

TOPIC = "local.requests"  # the name records carry; no broker is involved


class MemoryResults:
    """Result events and dead letters, kept in memory and acknowledged at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[tuple[str, bytes | None, bytes | None]] = []

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        on_ack: Callable[[], None],
        on_rejected: OnRejected | None = None,  # never called: memory takes any size
    ) -> None:
        with self._lock:
            self.records.append((topic, key, value))
        on_ack()


@dataclass(frozen=True)
class TimedRecord:
    """Encoded request bytes, to be handed out no earlier than ``due`` (monotonic seconds)."""

    key: bytes
    value: bytes
    due: float = 0.0


@dataclass
class LocalRun:
    """What came out: one summary per record, when each became durable, the wall time."""

    summaries: list[tuple[float, OutcomeSummary]] = field(default_factory=list)
    first_admitted: float = 0.0  # monotonic
    finished: float = 0.0
    results: MemoryResults = field(default_factory=MemoryResults)

    @property
    def seconds(self) -> float:
        return self.finished - self.first_admitted

    def failures(self) -> list[OutcomeSummary]:
        return [s for _, s in self.summaries if s.status != "SUCCEEDED"]


class LocalFeed:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        store: ObjectStore,
        encode: EncodeImage,
        hooks: WorkerHooks,
        max_batch_size: Callable[[Shape], int] | None = None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._store = store
        self._encode = encode
        self._hooks = hooks
        self._max_batch_size = max_batch_size or engine.max_batch_size

    def run(self, records: Iterable[TimedRecord], *, timeout_s: float = 3600.0) -> LocalRun:
        s, w = self._settings, self._settings.worker
        out = LocalRun()
        events: queue.SimpleQueue[Durable | Fatal] = queue.SimpleQueue()
        tracker, ownership = OffsetTracker(), Ownership()
        tp = (TOPIC, 0)
        ownership.grant(tp, tracker.assign(tp))
        identity = WorkerIdentity(worker_id="local", host="local", device=self._hooks.device)
        sink = OutcomeSink(
            out.results,
            results_topic="local.results",
            dead_letter_topic="local.dead-letter",
            group_id=w.group_id,
            identity=identity,
            encode_result=result_codec(s.kafka, "local.results").encode,
            on_durable=lambda ticket, summary: events.put(Durable(ticket, summary)),
            tracer=self._hooks.tracer,
        )
        work = WorkQueue(
            MicroBatcher(
                max_wait_s=w.max_wait_ms / 1000,
                max_batch_size=self._max_batch_size,
                fairness=w.priority_fairness,
            ),
            self._engine.shape_of,
        )
        pool = ThreadPoolExecutor(w.encode_threads, "streamgen-out")
        backoff = Backoff(w.retry_initial_ms / 1000, w.retry_max_ms / 1000)
        writer = ImageWriter(self._store, self._encode, s.store.image_format, StoreRetry(backoff))
        stage = GenerationStage(
            engine=self._engine,
            queue=work,
            ownership=ownership,
            sink=sink,
            writer=writer,
            output_pool=pool,
            max_attempts=w.max_attempts,
            backoff=backoff,
            retry_budget_s=w.retry_budget_s,
            on_fatal=lambda exc: events.put(Fatal(exc)),
            hooks=self._hooks,
        )
        intake = intake_for(s)
        pending = sorted(records, key=lambda r: r.due)
        deadline = time.monotonic() + timeout_s
        stage.start()
        try:
            offset = 0
            while offset < len(pending) or tracker.outstanding():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"local run: {tracker.outstanding()} requests unfinished")
                # 1. "Poll": due records, while in-flight work is below the limit.
                now = time.monotonic()
                while (
                    offset < len(pending)
                    and pending[offset].due <= now
                    and tracker.outstanding() < w.max_in_flight
                ):
                    record = pending[offset]
                    source = SourceRecord(TOPIC, 0, offset, record.key, record.value, (), 0)
                    out.first_admitted = out.first_admitted or time.monotonic()
                    self._admit(source, intake, tracker, sink, work)
                    offset += 1
                # 4. Complete what became durable (the wait doubles as the poll interval).
                next_due = pending[offset].due - now if offset < len(pending) else 0.05
                self._complete(events, tracker, out, min(max(next_due, 0.001), 0.05))
        finally:
            stage.stop()
            stage.join(30)
            pool.shutdown(wait=True)
        out.finished = max((t for t, _ in out.summaries), default=time.monotonic())
        return out

    def _admit(
        self,
        record: SourceRecord,
        intake: Intake,
        tracker: OffsetTracker,
        sink: OutcomeSink,
        work: WorkQueue,
    ) -> None:
        """Step 2 of the loop: decode + validate, dead-letter what can never succeed."""
        ticket = tracker.hand_out((record.topic, record.partition), record.offset)
        span = self._hooks.received(record)
        try:
            request = intake.admit(record)
        except Rejected as rejected:
            sink.failed(ticket, record, rejected.error, request=rejected.request, span=span)
            return
        item = WorkItem(ticket, record, request, received_at=time.time(), span=span)
        self._hooks.admitted(item)
        work.put(item)

    def _complete(
        self,
        events: queue.SimpleQueue[Durable | Fatal],
        tracker: OffsetTracker,
        out: LocalRun,
        wait_s: float,
    ) -> None:
        try:
            event = events.get(timeout=wait_s)
        except queue.Empty:
            return
        while True:
            if isinstance(event, Fatal):
                raise RuntimeError(f"local run: fatal error: {event.error}") from event.error
            if tracker.complete(event.ticket):
                self._hooks.durable(event.summary)
                out.summaries.append((time.monotonic(), event.summary))
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
