"""Metrics and trace context after a known run of the real worker."""

from __future__ import annotations

import urllib.request

import pytest
from confluent_kafka import Producer
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from streamgen.contracts.codec import request_codec
from streamgen.settings import Settings
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.tracing import WorkerTracer, extract_context, inject_context
from streamgen.telemetry.worker_hooks import WorkerHooks
from tests.integration.worker.conftest import (
    all_committed,
    make_request,
    publish_raw,
    read_results,
    wait_until,
    worker_thread,
)
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration


def _hooks(settings: Settings, provider: TracerProvider | None = None) -> WorkerHooks:
    return WorkerHooks(
        Metrics(models=["tiny"], gpu=False),
        worker_id="w-obs",
        host="test",
        group_id=settings.worker.group_id,
        metrics_port=0,
        tracer=WorkerTracer(provider, group_id=settings.worker.group_id, client_id="w-obs"),
    )


def test_metrics_count_a_known_run(worker_settings: Settings) -> None:
    codec = request_codec(worker_settings.kafka, worker_settings.topics.requests)
    good = [make_request(i) for i in range(5)]
    bad = make_request(9, steps=0)
    publish_raw(
        worker_settings,
        [(r.request_id.encode(), codec.encode(r)) for r in [*good, bad]] + [(None, b"junk")],
    )
    hooks = _hooks(worker_settings)
    with worker_thread(worker_settings, hooks=hooks) as worker:
        read_results(worker_settings, expected=6, timeout=120)
        assert wait_until(lambda: all_committed(worker_settings), 20)
        server = hooks.metrics.serve(0, addr="127.0.0.1")
        try:
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        finally:
            server.shutdown()
        worker.stop_and_wait()

    def value(line_start: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(line_start)]
        assert lines, f"{line_start} not exported"
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    assert value('streamgen_requests_consumed_total{model="tiny"}') == 6
    assert value('streamgen_requests_consumed_total{model="unknown"}') == 1
    assert value('streamgen_requests_succeeded_total{model="tiny"}') == 5
    assert value('streamgen_requests_failed_total{code="INVALID_REQUEST"') == 1
    assert value("streamgen_requests_dead_lettered_total") == 2
    assert value('streamgen_images_generated_total{model="tiny"}') == 5
    assert value("streamgen_batch_size_count") >= 1
    assert value("streamgen_batch_size_sum") == 5
    assert value("streamgen_in_flight_requests") == 0
    assert value('streamgen_rebalances_total{kind="assign"}') >= 1


def test_trace_context_crosses_submit_worker_and_result(worker_settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    codec = request_codec(worker_settings.kafka, worker_settings.topics.requests)
    request = make_request(0)
    headers: list[tuple[str, bytes]] = []
    inject_context(headers, topic=worker_settings.topics.requests, provider=provider)
    submitted = trace.get_current_span(extract_context(headers)).get_span_context()
    producer = Producer({"bootstrap.servers": worker_settings.kafka.bootstrap_servers})
    producer.produce(
        worker_settings.topics.requests,
        key=request.request_id.encode(),
        value=codec.encode(request),
        headers=headers,
    )
    assert producer.flush(10) == 0

    with worker_thread(worker_settings, hooks=_hooks(worker_settings, provider)) as worker:
        [message] = consume_all(
            worker_settings.kafka.bootstrap_servers,
            worker_settings.topics.results,
            expected=1,
            timeout=120,
        )
        worker.stop_and_wait()

    result_context = trace.get_current_span(extract_context(message.headers())).get_span_context()
    assert result_context.trace_id == submitted.trace_id, "the result continues the trace"
    spans = exporter.get_finished_spans()
    names = {s.name for s in spans if s.context.trace_id == submitted.trace_id}
    assert {"decode", "batch wait", "store", "publish"} <= names
    assert any(n.startswith("process ") for n in names)
    process = next(s for s in spans if s.name.startswith("process "))
    assert process.attributes["messaging.system"] == "kafka"
    assert process.attributes["messaging.consumer.group.name"] == worker_settings.worker.group_id
    assert (
        process.attributes["messaging.kafka.offset"] == 0
        or process.attributes["messaging.kafka.offset"] >= 0
    )
    [generate] = [s for s in spans if s.name == "generate"]
    assert process.context.span_id in {link.context.span_id for link in generate.links}
