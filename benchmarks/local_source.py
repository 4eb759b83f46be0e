"""The worker itself, fed from memory instead of a Kafka broker.

For machines with no broker (the GPU machine has no Java): the worker is assembled as in
production (``assemble``) and its real :class:`ConsumerLoop` runs — Avro decode and validation,
the offset tracker and commits, the micro-batcher, the GPU thread, the output pool (encode +
object store) and the result events. Only the two Kafka clients are in memory (those of the
unit tests, :mod:`tests.support.memory_kafka`, passed in through the worker's seam), and
reports say so:

- the :class:`MemoryConsumer` serves the records (all at once like a pre-filled topic, or each
  at its due time) and answers commits at once;
- the :class:`MemoryResults` keeps result events and dead letters and acknowledges at once, so
  "durable" here means "stored and encoded", not "on a broker".

The Kafka side's cost is measured apart, on CPU, by the pipeline benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import CancelCheck, Engine, GenerationOutcome, Shape, StepObserver
from streamgen.settings import Settings
from streamgen.store.base import ObjectStore
from streamgen.telemetry import worker_hooks
from streamgen.telemetry.worker_hooks import WorkerHooks, WorkItem
from streamgen.worker.assembly import assemble
from streamgen.worker.cancels import CancelSet
from streamgen.worker.clients import WorkerSeams
from streamgen.worker.events import OutcomeSummary
from streamgen.worker.progress_publisher import ProgressPublisher
from streamgen.worker.storage import EncodeImage
from tests.support.memory_kafka import MemoryConsumer, MemoryResults

__all__ = ["LocalFeed", "LocalRun", "MemoryResults", "TimedRecord"]

TOPIC = "local.requests"  # the name records carry; no broker is involved


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
        cancels: CancelSet | None = None,
        progress: ProgressPublisher | None = None,
    ) -> None:
        """``cancels``: the worker's memory of cancelled ids, for a benchmark to fill (the
        cancels topic's follower is not run here); by default an empty one. ``progress``: the
        progress events' publisher (started by the caller, closed after each run)."""
        self._settings = replace(
            settings,
            topics=replace(
                settings.topics,
                requests=TOPIC,
                results="local.results",
                dead_letter="local.dead-letter",
            ),
        )
        self._engine = engine if max_batch_size is None else _BatchLimit(engine, max_batch_size)
        self._store = store
        self._encode = encode
        self._hooks = hooks
        self._cancels = cancels
        self._progress = progress

    @property
    def settings(self) -> Settings:
        """The settings the worker runs with (its topics are this feed's own names)."""
        return self._settings

    def run(self, records: Iterable[TimedRecord], *, timeout_s: float = 3600.0) -> LocalRun:
        out = LocalRun()
        consumer = MemoryConsumer(TOPIC)
        for record in sorted(records, key=lambda r: r.due):
            consumer.append(record.key, record.value, due=record.due)
        expected = len(consumer.log.get(0, []))
        deadline = time.monotonic() + timeout_s
        with _observed(self._hooks, out):
            parts = assemble(
                self._settings,
                worker_id="local",
                host="local",
                engine=self._engine,
                store=self._store,
                encode=self._encode,
                hooks=self._hooks,
                seams=WorkerSeams(
                    consumer_factory=consumer.configured, sender_factory=out.results.configured
                ),
                cancels=self._cancels,
                progress=self._progress,
            )
            parts.stage.start()
            try:
                while len(out.summaries) < expected:
                    if parts.loop.life.fatal is not None:
                        error = parts.loop.life.fatal
                        raise RuntimeError(f"local run: fatal error: {error}") from error
                    if time.monotonic() > deadline:
                        left = expected - len(out.summaries)
                        raise TimeoutError(f"local run: {left} requests unfinished")
                    parts.loop.step()
            finally:
                parts.loop.close_out(flush_timeout_s=0.0)  # generation stops (CLOSING)
                parts.stage.join(30)
                parts.output_pool.shutdown(wait=True)
                if self._progress is not None:  # what the run reported is published
                    self._progress.close()
        out.finished = max((t for t, _ in out.summaries), default=time.monotonic())
        return out


@contextmanager
def _observed(hooks: WorkerHooks, out: LocalRun) -> Iterator[None]:
    """Note, for the run's report, when the first record was admitted and when each outcome
    became durable, through the caller's hooks (restored afterwards)."""
    admitted, durable = hooks.admitted, hooks.durable

    def on_admitted(item: WorkItem) -> None:
        out.first_admitted = out.first_admitted or time.monotonic()
        admitted(item)

    def on_durable(summary: worker_hooks.OutcomeSummary) -> None:
        assert isinstance(summary, OutcomeSummary)  # what the worker's sink hands over
        out.first_admitted = out.first_admitted or time.monotonic()  # a dead letter alone
        out.summaries.append((time.monotonic(), summary))
        durable(summary)

    hooks.admitted = on_admitted  # type: ignore[method-assign]
    hooks.durable = on_durable  # type: ignore[method-assign]
    try:
        yield
    finally:
        del hooks.admitted, hooks.durable


class _BatchLimit:
    """The engine with a batch-size limit of the benchmark's choosing."""

    def __init__(self, engine: Engine, max_batch_size: Callable[[Shape], int]) -> None:
        self._engine = engine
        self.max_batch_size = max_batch_size

    def shape_of(self, request: GenerationRequest) -> Shape:
        return self._engine.shape_of(request)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        return self._engine.generate(requests, cancelled=cancelled, on_step=on_step)
