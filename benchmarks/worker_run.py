"""Run the real worker (``run_worker``) in a thread until a known number of records is committed.

The hooks it is given are the worker's own (metrics and tracing stay on, as in production),
extended to note the first record received and the commits: the run is timed from the first
record to the commit that covers the last one, the same window as the raw baseline's. The
worker's consumer is built, through its seam (``WorkerSeams``), from a subclass that also notes
resumes and fetches (the intake gaps of ``benchmarks.gaps``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from opentelemetry.trace import Span

from benchmarks.gaps import IntakeGaps
from benchmarks.throughput import Clock, Throughput
from streamgen.engine.types import Engine, GenerationOutcome
from streamgen.settings import Settings
from streamgen.store.base import ObjectStore
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.tracing import KafkaRecordLike, WorkerTracer
from streamgen.telemetry.worker_hooks import WorkerHooks, WorkItem
from streamgen.worker.clients import WorkerSeams
from streamgen.worker.offsets import TopicPartitionKey
from streamgen.worker.run import run_worker

__all__ = ["ProgressHooks", "run_until_committed"]


class ProgressHooks(WorkerHooks):
    """WorkerHooks that also time the run, count batch sizes, sum the engine's time and note
    the gaps in the intake (benchmarks.gaps)."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        expected: int = 0,
        tracer: WorkerTracer | None = None,
    ) -> None:
        super().__init__(
            Metrics(models=set(settings.engine.models) | {"default"}),
            worker_id=worker_id,
            host="bench",
            group_id=settings.worker.group_id,
            device=settings.engine.device,
            tracer=tracer,
        )
        self.expected = expected
        self.clock = Clock()
        self.done = threading.Event()
        self.batch_sizes: Counter[int] = Counter()
        self.generate_seconds = 0.0  # wall time inside engine.generate, summed over batches
        self.result: Throughput | None = None
        self.gaps = IntakeGaps()
        self._points: dict[TopicPartitionKey, int] = {}

    def mean_batch_size(self) -> float:
        batches = sum(self.batch_sizes.values())
        return sum(k * n for k, n in self.batch_sizes.items()) / batches if batches else 0.0

    def received(self, record: KafkaRecordLike) -> Span:
        self.clock.start_once()
        if not self.done.is_set():  # the run's window only, like the clock
            self.gaps.received(time.monotonic())
        return super().received(record)

    def batch(
        self, items: Sequence[WorkItem], outcomes: Sequence[GenerationOutcome], gpu_seconds: float
    ) -> None:
        super().batch(items, outcomes, gpu_seconds)
        self.batch_sizes[len(items)] += 1
        self.generate_seconds += gpu_seconds

    def committed(
        self, points: dict[TopicPartitionKey, int], log_ends: dict[TopicPartitionKey, int]
    ) -> None:
        super().committed(points, log_ends)
        self._points.update(points)
        # Each partition was empty before the prefill, so committed positions sum to a count.
        if not self.done.is_set() and sum(self._points.values()) >= self.expected:
            self.result = self.clock.result("", self.expected)
            self.done.set()


def _fetch_timed(hooks: ProgressHooks) -> type[Consumer]:
    """The worker's own consumer, as a subclass that notes each resume and each poll that
    brings records (the resume gap): the loop and its settings are untouched."""

    class FetchTimedConsumer(Consumer):
        def resume(self, partitions: list[TopicPartition]) -> None:
            super().resume(partitions)
            if not hooks.done.is_set():
                hooks.gaps.resumed(time.monotonic())

        def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
            messages = super().consume(num_messages, timeout)
            if not hooks.done.is_set() and any(m.error() is None for m in messages):
                hooks.gaps.fetched(time.monotonic())
            return messages

    return FetchTimedConsumer


def run_until_committed(
    settings: Settings,
    *,
    label: str,
    expected: int,
    engine: Engine,
    store: ObjectStore | None = None,
    timeout_s: float = 600.0,
    hooks: ProgressHooks | None = None,
    **run_kwargs: Any,
) -> tuple[Throughput, ProgressHooks]:
    """``hooks``: a ProgressHooks (subclass) of the caller's, made with ``expected``."""
    hooks = hooks or ProgressHooks(settings, worker_id=f"bench-{label}", expected=expected)
    stop = threading.Event()
    codes: list[int] = []

    def target() -> None:
        codes.append(
            run_worker(
                settings,
                engine=engine,
                store=store,
                hooks=hooks,
                install_signal_handlers=False,
                stop=stop,
                seams=WorkerSeams(consumer_factory=_fetch_timed(hooks)),
                **run_kwargs,
            )
        )

    thread = threading.Thread(target=target, name="bench-worker", daemon=True)
    thread.start()
    finished = hooks.done.wait(timeout_s)
    stop.set()
    thread.join(120)
    if not finished or hooks.result is None:
        raise TimeoutError(f"{label}: not every request committed within {timeout_s}s")
    if codes != [0]:
        raise RuntimeError(f"{label}: worker exited with {codes}")
    r = hooks.result
    return replace(r, label=label), hooks
