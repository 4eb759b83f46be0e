"""OpenTelemetry spans for a request's trip: submit → decode → batch wait → generate → store →
publish, with the W3C trace context carried in Kafka record headers.

::

    send streamgen.requests        PRODUCER  (streamgen submit; its context rides in the headers)
     └─ process streamgen.requests CONSUMER  one per record, from poll to durable outcome
         ├─ decode                           decode + validate
         ├─ batch wait                       arrival → start of its batch (explicit timestamps)
         ├─ store                            its images into the object store
         └─ publish                PRODUCER  its result (the result's headers carry this context)
    generate                       INTERNAL  one per batch, linked to every request it serves

Attributes follow the current messaging semantic conventions (``messaging.system``,
``messaging.destination.name``, ``messaging.consumer.group.name``, ``messaging.kafka.offset`` …).

Off by default: :func:`configure_tracing` installs an SDK provider only when the standard
``OTEL_*`` variables ask for an exporter (see :mod:`streamgen.telemetry.tracing_setup`). Without one
every call here hits OpenTelemetry's no-op tracer, which still forwards an upstream
``traceparent`` from request headers to result headers, so traces are not cut by a worker
that does not export its own spans.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from streamgen.telemetry.tracing_setup import configure_tracing

__all__ = [
    "TRACE_HEADERS",
    "KafkaRecordLike",
    "WorkerTracer",
    "configure_tracing",
    "extract_context",
    "inject_context",
]

INSTRUMENTATION = "streamgen"
TRACE_HEADERS = ("traceparent", "tracestate")
_W3C = TraceContextTextMapPropagator()

Headers = list[tuple[str, bytes]]
Attributes = dict[str, str | int | float | bool]


class KafkaRecordLike(Protocol):
    """What a span needs to know about a consumed record (the worker's SourceRecord fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def extract_context(headers: Sequence[tuple[str, bytes | None]] | None) -> Context:
    """The remote context in a record's W3C headers (an empty Context when there is none)."""
    carrier = {k.lower(): _text(v) for k, v in headers or () if k.lower() in TRACE_HEADERS}
    if not carrier:
        return Context()
    return _W3C.extract(carrier)


def _inject_into(headers: Headers, context: Context | None) -> None:
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    if not carrier:
        return
    # A re-published record (replay, result of a traced request) must not carry two parents.
    headers[:] = [(k, v) for k, v in headers if k.lower() not in TRACE_HEADERS]
    headers.extend((k, v.encode()) for k, v in carrier.items())


def inject_context(
    headers: Headers,
    *,
    topic: str = "",
    key: str | bytes | None = None,
    provider: trace.TracerProvider | None = None,
) -> None:
    """Put the W3C ``traceparent``/``tracestate`` of a record about to be produced into
    ``headers`` (in place, replacing any already there).

    With tracing on, a short PRODUCER span ``send <topic>`` (child of the current span, if
    any) becomes the record's creation context; with tracing off, the current context is
    injected if there is one, and nothing otherwise.
    """
    tracer = (provider or trace.get_tracer_provider()).get_tracer(INSTRUMENTATION)
    span = tracer.start_span(
        f"send {topic}".strip(), kind=SpanKind.PRODUCER, attributes=_send_attributes(topic, key)
    )
    try:
        _inject_into(headers, trace.set_span_in_context(span))
    finally:
        span.end()


def _send_attributes(topic: str, key: str | bytes | None) -> Attributes:
    attributes: Attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
    }
    if topic:
        attributes["messaging.destination.name"] = topic
    if key is not None:
        attributes["messaging.kafka.message.key"] = _text(key)
    return attributes


class WorkerTracer:
    """The worker's spans. ``provider`` None: the global one (no-op unless configured)."""

    def __init__(
        self,
        provider: trace.TracerProvider | None = None,
        *,
        group_id: str = "",
        client_id: str = "",
    ) -> None:
        self._provider = provider
        self._tracer = (provider or trace.get_tracer_provider()).get_tracer(INSTRUMENTATION)
        self._group_id = group_id
        self._client_id = client_id

    def _off(self) -> bool:
        """True while spans go nowhere: no SDK provider, here or (so far) globally.

        Asked on every call, not once: a global provider installed later turns spans on, as
        it does for the proxy tracer kept above. While off, a stage, a batch wait and the
        batch span cost nothing (no attributes, links or context switches: together they
        were about 5 % of a request's CPU with the no-op engine), and the record's span is
        the upstream context alone, which ``publish`` still forwards.
        """
        provider = self._provider or trace.get_tracer_provider()
        return isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)

    def record_received(self, record: KafkaRecordLike) -> Span:
        """Start the record's ``process <topic>`` span, a child of the producer's context.

        The worker keeps the returned span with the work item and ends it with
        :meth:`finished` once the outcome is durable.
        """
        if self._off():
            return self._tracer.start_span(
                f"process {record.topic}", context=extract_context(record.headers)
            )
        attributes: Attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        }
        if self._group_id:
            attributes["messaging.consumer.group.name"] = self._group_id
        if self._client_id:
            attributes["messaging.client.id"] = self._client_id
        if record.key is not None:
            attributes["messaging.kafka.message.key"] = _text(record.key)
        return self._tracer.start_span(
            f"process {record.topic}",
            context=extract_context(record.headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )

    @contextmanager
    def stage(
        self, name: str, parent: Span | None, **attributes: str | int | float
    ) -> Iterator[Span]:
        """A child span of the record's span for one stage (``decode``, ``store`` …); an
        exception escaping the block marks it as an error and propagates."""
        if self._off():
            yield INVALID_SPAN
            return
        context = trace.set_span_in_context(parent) if parent is not None else Context()
        with self._tracer.start_as_current_span(
            name, context=context, attributes=attributes
        ) as span:
            yield span

    def batch_wait(self, parent: Span | None, start_s: float, end_s: float) -> None:
        """Record the time a request waited for its batch (wall-clock seconds)."""
        if self._off():
            return
        context = trace.set_span_in_context(parent) if parent is not None else Context()
        span = self._tracer.start_span("batch wait", context=context, start_time=_ns(start_s))
        span.end(end_time=_ns(max(end_s, start_s)))

    @contextmanager
    def generate(
        self, requests: Sequence[Span | None], *, model: str, **attributes: str | int | float
    ) -> Iterator[Span]:
        """The batch span: a root of its own, linked to the span of every request it serves
        (one batch has many parents, which a single parent link cannot say)."""
        if self._off():
            yield INVALID_SPAN
            return
        links = [
            Link(span.get_span_context())
            for span in requests
            if span is not None and span.get_span_context().is_valid
        ]
        all_attributes: Attributes = {
            "streamgen.model": model,
            "messaging.batch.message_count": len(requests),
            **attributes,
        }
        with self._tracer.start_as_current_span(
            "generate", context=Context(), links=links, attributes=all_attributes
        ) as span:
            yield span

    @contextmanager
    def publish(
        self, parent: Span | None, *, topic: str, key: str | bytes | None, headers: Headers
    ) -> Iterator[Span]:
        """The PRODUCER span of a result or dead letter; its context goes into ``headers`` so a
        downstream consumer of the results topic continues the same trace."""
        context = trace.set_span_in_context(parent) if parent is not None else Context()
        if self._off():
            # What the no-op tracer's publish span would carry: the parent's context.
            _inject_into(headers, context)
            yield INVALID_SPAN if parent is None else parent
            return
        with self._tracer.start_as_current_span(
            "publish",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes=_send_attributes(topic, key),
        ) as span:
            _inject_into(headers, trace.set_span_in_context(span))
            yield span

    @staticmethod
    def finished(span: Span | None, error: BaseException | str | None = None) -> None:
        """End a record's span; ``error`` (an exception or a code) marks it failed."""
        if span is None:
            return
        if isinstance(error, BaseException):
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)
