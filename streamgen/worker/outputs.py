"""Result events and dead letters: what each request ends with, and when that is durable.

A request's outputs are durable when the broker has acknowledged every record it produced
(its result event; or its dead letter and, when the request id is known, its FAILED result).
Only then is its ticket reported done, and only then may its offset be committed. A record
the broker refuses as it is (too large) is published claim-checked by the
:class:`~streamgen.worker.claim_check.ClaimChecker`, with the same acknowledgement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from streamgen.contracts.dead_letter import DeadLetterReason, dead_letter_headers
from streamgen.contracts.formats import OutputFormat
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import (
    AppliedAdapter,
    GenerationResult,
    ResultError,
    StoredImage,
    Timings,
    WorkerIdentity,
)
from streamgen.errors import CancelRequested, StreamgenError
from streamgen.telemetry.tracing import WorkerTracer
from streamgen.worker.claim_check import ClaimChecker
from streamgen.worker.events import LoopEvents, OutcomeSummary
from streamgen.worker.offsets import Ticket
from streamgen.worker.publisher import OnRejected
from streamgen.worker.work_item import SourceRecord, WorkItem

__all__ = ["OutcomeSink", "RecordSender"]

Encode = Callable[[GenerationResult], bytes]


class RecordSender(Protocol):
    """Where result events and dead letters go: the worker's :class:`Publisher` (Kafka), or
    the in-memory stand-in of the GPU benchmarks, which run where no broker can."""

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        on_ack: Callable[[], None],
        on_rejected: OnRejected | None = None,
    ) -> None: ...


class _Join:
    """Calls ``done`` once ``count`` acknowledgements have arrived (from any thread)."""

    def __init__(self, count: int, done: Callable[[], None]) -> None:
        self._left = count
        self._done = done
        self._lock = threading.Lock()

    def ack(self) -> None:
        with self._lock:
            self._left -= 1
            finished = self._left == 0
        if finished:
            self._done()


def _ms(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


class OutcomeSink:
    def __init__(
        self,
        publisher: RecordSender,
        *,
        results_topic: str,
        dead_letter_topic: str,
        group_id: str,
        identity: WorkerIdentity,
        encode_result: Encode,
        events: LoopEvents,
        tracer: WorkerTracer | None = None,
        claims: ClaimChecker | None = None,
    ) -> None:
        self._publisher = publisher
        self._claims = claims  # None: no object store to fall back on (in-memory benchmarks)
        self._results = results_topic
        self._dead = dead_letter_topic
        self._group = group_id
        self._identity = identity
        self._encode = encode_result
        self._events = events  # durable outcomes go to the consumer loop
        self._tracer = tracer or WorkerTracer()

    def succeeded(
        self,
        item: WorkItem,
        *,
        seed: int,
        images: Sequence[StoredImage],
        output: OutputFormat,
        started_at: float,
        gpu_seconds: float,
        batch_size: int,
        family: str = "",
        dtype: str = "",
        adapters: Sequence[AppliedAdapter] = (),
    ) -> None:
        """``family``, ``dtype`` and ``adapters``: what the engine says ran the request."""
        request = item.request
        result = GenerationResult(
            request_id=request.request_id,
            status="SUCCEEDED",
            worker=self._identity,
            timings=self._timings(item, started_at, gpu_seconds, batch_size),
            images=tuple(images),
            width=request.width,
            height=request.height,
            seed=seed,
            model=request.model,
            attempt=item.attempt,
            metadata=dict(request.metadata),
            output_format=output.format.name,
            output_quality=output.quality,
            family=family,
            dtype=dtype,
            tenant=request.tenant,
            adapters=tuple(adapters),
        )
        summary = OutcomeSummary(
            status="SUCCEEDED",
            request_id=request.request_id,
            model=request.model,
            queue_wait_s=result.timings.queue_wait_seconds,
            e2e_s=_seconds_between(result.timings.created_at, result.timings.finished_at),
            span=item.span,
            topic=item.record.topic,
            tenant=item.request.tenant,
        )
        self._send_result(result, item.span, partial(self._events.durable, item.ticket, summary))

    def failed(
        self,
        ticket: Ticket,
        record: SourceRecord,
        error: StreamgenError,
        *,
        request: GenerationRequest | None,
        attempt: int = 1,
        received_at: float | None = None,
        span: Any = None,
    ) -> None:
        """Dead-letter the original record and, if the request id is known, emit FAILED."""
        now = time.time()
        reason = DeadLetterReason(
            stage=error.stage or "generate",
            error_class=type(error).__name__,
            code=error.code,
            message=str(error),
            retryable=error.retryable,
            attempts=attempt,
            request_id=request.request_id if request else "",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
            group_id=self._group,
            worker_id=self._identity.worker_id,
            failed_at_ms=int(now * 1000),
        )
        created = request.created_at if request else None
        created = created or _ms(record.timestamp_ms / 1000)
        summary = OutcomeSummary(
            status="FAILED",
            request_id=request.request_id if request else "",
            model=request.model if request else "",
            error_code=error.code,
            stage=reason.stage,
            dead_lettered=True,
            queue_wait_s=max(0.0, now - received_at) if received_at else None,
            e2e_s=_seconds_between(created, _ms(now)),
            span=span,
            topic=record.topic,
            tenant=request.tenant if request else "",
        )
        join = _Join(2 if request else 1, partial(self._events.durable, ticket, summary))
        self._publisher.send(
            self._dead,
            record.key,
            record.value,
            dead_letter_headers(record.headers, reason),
            join.ack,
            on_rejected=None
            if self._claims is None
            else partial(self._claims.dead_letter, self._dead, record, reason, join.ack),
        )
        if request is None:
            return
        result = self._failed_result(request, error, attempt, created, now, summary)
        self._send_result(result, span, join.ack)

    def cancelled(self, item: WorkItem, error: CancelRequested) -> None:
        """A cancelled request: its FAILED result says CANCELLED; no dead letter (it is not a
        bad request, and replaying it would only undo the cancel). Durable, and so committed,
        once the broker has the result."""
        now = time.time()
        request = item.request
        created = request.created_at or _ms(item.record.timestamp_ms / 1000)
        summary = OutcomeSummary(
            status="CANCELLED",
            request_id=request.request_id,
            model=request.model,
            error_code=error.code,
            stage=error.stage,
            queue_wait_s=max(0.0, now - item.received_at),
            e2e_s=_seconds_between(created, _ms(now)),
            span=item.span,
            topic=item.record.topic,
            tenant=item.request.tenant,
        )
        result = self._failed_result(request, error, item.attempt, created, now, summary)
        self._send_result(result, item.span, partial(self._events.durable, item.ticket, summary))

    def _failed_result(
        self,
        request: GenerationRequest,
        error: StreamgenError,
        attempt: int,
        created: datetime | None,
        now: float,
        summary: OutcomeSummary,
    ) -> GenerationResult:
        return GenerationResult(
            request_id=request.request_id,
            status="FAILED",
            worker=self._identity,
            timings=Timings(
                created_at=created,
                finished_at=_ms(now),
                queue_wait_seconds=summary.queue_wait_s or 0.0,
            ),
            width=request.width,
            height=request.height,
            seed=request.seed,
            model=request.model,
            error=ResultError(code=error.code, message=str(error), stage=summary.stage),
            attempt=attempt,
            metadata=dict(request.metadata),
            tenant=request.tenant,
        )

    def _send_result(self, result: GenerationResult, span: Any, on_ack: Callable[[], None]) -> None:
        # The result's headers carry the trace on to whoever consumes the results topic.
        headers: list[tuple[str, bytes]] = []
        key = result.request_id.encode()
        with self._tracer.publish(span, topic=self._results, key=key, headers=headers):
            encoded = self._encode(result)
            self._publisher.send(
                self._results,
                key,
                encoded,
                headers,
                on_ack,
                on_rejected=None
                if self._claims is None
                else partial(self._claims.result, self._results, result, encoded, headers, on_ack),
            )

    def _timings(
        self, item: WorkItem, started_at: float, gpu_seconds: float, batch_size: int
    ) -> Timings:
        created = item.request.created_at or _ms(item.record.timestamp_ms / 1000)
        return Timings(
            created_at=created,
            started_at=_ms(started_at),
            finished_at=_ms(time.time()),
            queue_wait_seconds=max(0.0, started_at - item.received_at),
            gpu_seconds=gpu_seconds,
            batch_size=batch_size,
        )
