"""The GPU thread: take a ready batch, generate, hand each outcome to the output pool.

It never touches Kafka: the consumer thread keeps polling (and so keeps the group membership)
however long a batch takes (DESIGN invariant 4). While the object store cannot give an init
image, the batch waits here with backoff (DESIGN invariant 6): the work queue fills up and the
consumer pauses its partitions, nothing is dead-lettered and nothing is committed past it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import deadline_expired
from streamgen.engine.types import Engine, GenerationOutcome
from streamgen.errors import CancelRequested, RequestCancelled, StoreUnavailable, StreamgenError
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.backoff import Backoff, TransientRetries
from streamgen.worker.cancels import CancelSet
from streamgen.worker.clients import Clock
from streamgen.worker.events import LoopEvents
from streamgen.worker.failure_policy import Disposition, disposition_for
from streamgen.worker.lifecycle import Lifecycle
from streamgen.worker.offsets import Ticket
from streamgen.worker.outputs import OutcomeSink
from streamgen.worker.progress import NO_PROGRESS, ProgressReporter
from streamgen.worker.storage import ImageWriter
from streamgen.worker.work_item import WorkItem
from streamgen.worker.work_queue import WorkQueue

__all__ = ["GenerationStage"]

log = logging.getLogger(__name__)


class CurrentGenerations(Protocol):
    """Whether a ticket's partition generation is still ours (``OffsetTracker``, thread-safe
    for this one question): work of a partition that moved away is dropped, not produced."""

    def is_current(self, ticket: Ticket) -> bool: ...


@dataclass(frozen=True, slots=True)
class _BatchRun:
    """What every result of one engine call reports about the call."""

    started_at: float  # wall clock, seconds
    gpu_seconds: float
    size: int


class GenerationStage(threading.Thread):
    def __init__(
        self,
        *,
        engine: Engine,
        queue: WorkQueue,
        generations: CurrentGenerations,
        cancels: CancelSet,
        sink: OutcomeSink,
        writer: ImageWriter,
        output_pool: Executor,
        max_attempts: int,
        backoff: Backoff,
        retry_budget_s: float,
        events: LoopEvents,
        lifecycle: Lifecycle,
        clock: Clock,
        hooks: WorkerHooks,
        progress: ProgressReporter = NO_PROGRESS,
    ) -> None:
        """Runs until ``lifecycle`` is closing; a fatal error goes to ``events``. ``clock`` is
        what deadlines are checked against, as at intake (``WorkerSeams.clock``); ``progress``
        hears of each batch, its denoising steps and each request's images stored."""
        super().__init__(name="streamgen-gpu", daemon=True)
        self._engine = engine
        self._queue = queue
        self._generations = generations
        self._cancels = cancels
        self._sink = sink
        self._writer = writer
        self._pool = output_pool
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._retry_budget_s = retry_budget_s
        self._events = events
        self._life = lifecycle
        self._clock = clock
        self._hooks = hooks
        self._progress = progress
        self.busy = threading.Event()  # set while a batch is on the GPU

    def run(self) -> None:
        try:
            while not self._life.closing:
                batch = self._queue.take(timeout=0.1)
                if batch is not None:
                    self.busy.set()
                    try:
                        self._run_batch(list(batch.items))
                    finally:
                        self.busy.clear()
        except BaseException as exc:  # the process must not go on with a broken GPU thread
            log.exception("GPU thread failed")
            self._events.fatal(exc)

    def _run_batch(self, items: list[WorkItem]) -> None:
        retries: TransientRetries | None = None  # made at the first failure: most batches have none
        while True:
            # 1. Drop work of partitions that moved away, expire what waited too long and end
            #    what was cancelled (again on each retry: the wait may be long, and each item
            #    fails only once).
            items = self._live(items)
            if not items:
                return
            # 2. Generate; the engine isolates per-request failures and raises only fatal
            #    ones, or StoreUnavailable when an init image cannot be read yet.
            try:
                self._generate(items)
                return
            except StoreUnavailable as exc:
                retries = retries or TransientRetries(self._backoff, self._retry_budget_s)
                delay = retries.next_delay("object store (init images)", exc)
                log.warning(
                    "batch of %d waits for the object store (%s); retry in %.2fs",
                    len(items),
                    exc,
                    delay,
                )
                self._hooks.store_retry()
                if self._life.wait_closing(delay):
                    # Stopping: nothing was produced for these; the next owner redoes them.
                    log.warning("abandoned a batch of %d waiting for the store", len(items))
                    return

    def _live(self, items: list[WorkItem]) -> list[WorkItem]:
        now = self._clock()
        live = []
        for item in items:
            if not self._generations.is_current(item.ticket):
                continue
            expired = deadline_expired(item.request, now)
            if expired is not None:
                self._fail(item, expired)
                continue
            if self._cancels.cancelled(item.request.request_id):
                self._sink.cancelled(item, CancelRequested(item.request.request_id, stage="queue"))
                continue
            live.append(item)
        return live

    def _generate(self, live: list[WorkItem]) -> None:
        by_id = {item.request.request_id: item for item in live}
        withdrawn: set[str] = set()  # ids the engine dropped because they were cancelled

        def cancelled(request: GenerationRequest) -> bool:
            # Asked between denoising steps: a row leaves its batch at the next step boundary.
            if self._life.closing:
                return True  # the worker stops: nothing of this batch can be published now
            if not self._generations.is_current(by_id[request.request_id].ticket):
                return True  # the partition moved away: dropped, the new owner redoes it
            if self._cancels.cancelled(request.request_id):
                withdrawn.add(request.request_id)
                return True
            return False

        started = time.time()
        t0 = time.perf_counter()
        self._progress.batch_started(list(by_id))
        with self._hooks.generating(live, started):
            outcomes = self._engine.generate(
                [item.request for item in live],
                cancelled=cancelled,
                on_step=self._progress.step_observer(),
            )
        gpu_seconds = time.perf_counter() - t0
        self._hooks.batch(live, outcomes, gpu_seconds)
        if self._life.closing:
            # The drain timed out while this batch ran and the output pool is shut: abandon
            # the outcomes (nothing was produced or committed for them; they are redone).
            log.warning("abandoned a batch of %d finished after the drain timeout", len(live))
            return
        # 3. Hand each outcome on: store + result on the output pool, or retry, or fail.
        for item, outcome in zip(live, outcomes, strict=True):
            run = _BatchRun(started, gpu_seconds, len(live))
            self._dispatch(item, _named_cancel(outcome, withdrawn), run)

    def _dispatch(
        self,
        item: WorkItem,
        outcome: GenerationOutcome,
        run: _BatchRun,
    ) -> None:
        if outcome.error is None:
            self._pool.submit(self._store_and_publish, item, outcome, run)
            return
        disposition = disposition_for(
            outcome.error, attempt=item.attempt, max_attempts=self._max_attempts
        )
        if disposition is Disposition.RETRY:
            log.warning(
                "request %s failed (attempt %d): %s",
                item.request.request_id,
                item.attempt,
                outcome.error,
            )
            item.attempt += 1
            self._queue.put(item)
        elif disposition is Disposition.DEAD_LETTER:
            self._fail(item, outcome.error)
        elif disposition is Disposition.CANCELLED and self._generations.is_current(item.ticket):
            assert isinstance(outcome.error, CancelRequested)
            self._sink.cancelled(item, outcome.error)
        elif disposition is Disposition.FATAL:
            raise outcome.error
        # Disposition.DROP: the partition moved away; its new owner redoes the request.

    def _fail(self, item: WorkItem, error: StreamgenError) -> None:
        self._sink.failed(
            item.ticket,
            item.record,
            error,
            request=item.request,
            attempt=item.attempt,
            received_at=item.received_at,
        )

    def _store_and_publish(
        self,
        item: WorkItem,
        outcome: GenerationOutcome,
        run: _BatchRun,
    ) -> None:
        try:
            if not self._generations.is_current(item.ticket):
                return
            with self._hooks.stage("store", item.span):
                stored = self._writer.write(item, outcome.images, outcome.seed)
            self._progress.stored(item.request.request_id)
            self._sink.succeeded(
                item,
                seed=outcome.seed,
                images=stored.images,
                output=stored.output,
                started_at=run.started_at,
                gpu_seconds=run.gpu_seconds,
                batch_size=run.size,
                family=outcome.family,
                dtype=outcome.dtype,
                adapters=outcome.adapters,
            )
        except StoreUnavailable:
            # Only raised once the worker is stopping: the request stays uncommitted and is
            # redone after the restart.
            log.warning("abandoned storing %s: worker stopping", item.request.request_id)
        except BaseException as exc:
            log.exception("storing outputs of %s failed", item.request.request_id)
            self._events.fatal(exc)


def _named_cancel(outcome: GenerationOutcome, withdrawn: set[str]) -> GenerationOutcome:
    """The engine says only that a row left its batch; a cancel is what made it leave when the
    request is in ``withdrawn`` (an expired one is a DeadlineExpired, never this)."""
    request_id = outcome.request.request_id
    if type(outcome.error) is not RequestCancelled or request_id not in withdrawn:
        return outcome
    return dataclasses.replace(outcome, error=CancelRequested(request_id, stage="generate"))
