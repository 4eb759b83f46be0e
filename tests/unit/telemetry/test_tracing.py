from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from streamgen.errors import ConfigError
from streamgen.telemetry.tracing import WorkerTracer, extract_context, inject_context
from streamgen.telemetry.tracing_setup import configure_tracing, requested_exporters


@dataclass
class Record:
    topic: str = "requests"
    partition: int = 2
    offset: int = 41
    key: bytes | None = b"req-1"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def test_trace_crosses_submit_worker_and_result(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # submit side
    request_headers: list[tuple[str, bytes]] = [("app", b"x")]
    inject_context(request_headers, topic="requests", key="req-1", provider=provider)
    assert [k for k, _ in request_headers] == ["app", "traceparent"]

    # worker side
    tracer = WorkerTracer(provider, group_id="streamgen", client_id="w1")
    record = Record(headers=request_headers)
    span = tracer.record_received(record)
    with tracer.stage("decode", span):
        pass
    tracer.batch_wait(span, 100.0, 100.5)
    with tracer.generate([span, None], model="tiny", steps=4):
        pass
    with tracer.stage("store", span, images=1):
        pass
    result_headers: list[tuple[str, bytes]] = [("traceparent", b"stale")]
    with tracer.publish(span, topic="results", key="req-1", headers=result_headers):
        pass
    tracer.finished(span)

    spans = by_name(exporter)
    send, process = spans["send requests"], spans["process requests"]
    trace_id = send.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    for name in ("decode", "batch wait", "store", "publish"):
        assert spans[name].context.trace_id == trace_id
        assert spans[name].parent.span_id == process.context.span_id  # type: ignore[union-attr]
    # The batch span is its own trace, linked to each request it served.
    generate = spans["generate"]
    assert generate.context.trace_id != trace_id
    assert [link.context.span_id for link in generate.links] == [process.context.span_id]
    assert (generate.attributes or {})["messaging.batch.message_count"] == 2
    # The result carries the publish span's context, and only that one.
    assert [k for k, _ in result_headers] == ["traceparent"]
    downstream = trace.get_current_span(extract_context(result_headers)).get_span_context()
    assert downstream.trace_id == trace_id
    assert downstream.span_id == spans["publish"].context.span_id
    assert spans["batch wait"].start_time == 100_000_000_000
    assert spans["batch wait"].end_time == 100_500_000_000


def test_consumer_span_has_messaging_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = WorkerTracer(provider, group_id="streamgen", client_id="w1")
    tracer.finished(tracer.record_received(Record()))
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.CONSUMER
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "requests",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 41,
        "messaging.consumer.group.name": "streamgen",
        "messaging.client.id": "w1",
        "messaging.kafka.message.key": "req-1",
    }


def test_failures_mark_spans_as_errors(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = WorkerTracer(provider)
    span = tracer.record_received(Record())
    with pytest.raises(RuntimeError), tracer.stage("store", span):
        raise RuntimeError("bucket gone")
    tracer.finished(span, "STORE_UNAVAILABLE")
    spans = by_name(exporter)
    assert spans["store"].status.status_code == StatusCode.ERROR
    assert spans["process requests"].status.description == "STORE_UNAVAILABLE"
    other = tracer.record_received(Record())
    tracer.finished(other, ValueError("bad width"))
    failed = exporter.get_finished_spans()[-1]
    assert failed.status.description == "ValueError: bad width"
    assert failed.events[0].name == "exception"


def test_tracing_off_still_forwards_an_upstream_context() -> None:
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    off = trace.NoOpTracerProvider()
    tracer = WorkerTracer(off)
    span = tracer.record_received(Record(headers=[("traceparent", upstream.encode())]))
    headers: list[tuple[str, bytes]] = []
    with tracer.publish(span, topic="results", key=None, headers=headers):
        pass
    assert headers == [("traceparent", upstream.encode())]


def test_tracing_off_and_no_upstream_adds_no_headers() -> None:
    headers: list[tuple[str, bytes]] = []
    inject_context(headers, topic="requests", provider=trace.NoOpTracerProvider())
    assert headers == []


def test_garbage_traceparent_gives_an_empty_context() -> None:
    ctx = extract_context([("traceparent", b"not-a-trace"), ("other", None)])
    assert not trace.get_current_span(ctx).get_span_context().is_valid
    assert extract_context(None) == extract_context([])


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_environment_chooses_exporters(env: dict[str, str], expected: list[str]) -> None:
    assert requested_exporters(env) == expected


def test_unknown_exporter_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"OTEL_TRACES_EXPORTER.*'zipkn'"):
        requested_exporters({"OTEL_TRACES_EXPORTER": "zipkn"})


def test_off_by_default() -> None:
    assert configure_tracing(env={}, install_global=False) is None


def test_missing_otlp_package_is_a_log_line_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    except ImportError:
        assert configure_tracing(env=env, install_global=False) is None
        assert "pip install opentelemetry-exporter-otlp-proto-http" in caplog.text
    else:
        provider = configure_tracing(env=env, install_global=False)
        assert provider is not None
        provider.shutdown()


def test_console_exporter_prints_spans_from_a_real_process() -> None:
    code = (
        "from streamgen.telemetry.tracing import configure_tracing, inject_context\n"
        "p = configure_tracing('probe')\n"
        "h = []\n"
        "inject_context(h, topic='requests')\n"
        "p.shutdown()\n"
        "print(h)\n"
    )
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert '"name": "send requests"' in out
    assert '"service.name": "probe"' in out
    assert "traceparent" in out


@pytest.mark.parametrize("off", [None, trace.NoOpTracerProvider()], ids=["global", "no-op"])
def test_tracing_off_forwards_the_upstream_context_through_every_stage(
    off: trace.TracerProvider | None,
) -> None:
    # None: the global provider, which no test in this process installs (a proxy until then).
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    tracer = WorkerTracer(off, group_id="g", client_id="w")
    span = tracer.record_received(Record(headers=[("traceparent", upstream.encode())]))
    with tracer.stage("decode", span) as decode:
        assert not decode.is_recording()
    tracer.batch_wait(span, 1.0, 2.0)
    with tracer.generate([span, None], model="tiny") as batch:
        assert not batch.is_recording()
    headers: list[tuple[str, bytes]] = [("traceparent", b"stale")]
    with tracer.publish(span, topic="results", key=b"k", headers=headers):
        pass
    assert headers == [("traceparent", upstream.encode())]
    tracer.finished(span)


def test_tracing_off_without_upstream_publishes_no_trace_headers() -> None:
    tracer = WorkerTracer(trace.NoOpTracerProvider())
    span = tracer.record_received(Record())
    headers: list[tuple[str, bytes]] = [("app", b"x")]
    with tracer.publish(span, topic="results", key=None, headers=headers):
        pass
    assert headers == [("app", b"x")]


def test_a_provider_installed_after_the_tracer_turns_its_spans_on() -> None:
    # A fresh process: the global provider can be set once per process.
    code = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
        "InMemorySpanExporter\n"
        "from streamgen.telemetry.tracing import WorkerTracer\n"
        "tracer = WorkerTracer()\n"
        "exporter = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(provider)\n"
        "with tracer.stage('decode', None):\n"
        "    pass\n"
        "print([s.name for s in exporter.get_finished_spans()])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['decode']"
