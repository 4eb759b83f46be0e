"""span_split cuts a request's wall time at its spans' edges, with no gap and no overlap."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link

from benchmarks.span_split import (
    PARTS,
    SEGMENTS,
    RequestSplit,
    median_parts,
    median_split,
    split_requests,
)

S = 1_000_000_000  # ns per second


def _request_spans(tracer: trace.Tracer, request_id: str, t0: float) -> None:
    """One request's spans as the worker makes them, at t0 + known offsets (seconds)."""
    at = {  # offsets of: took, queued, generate start/end, store start/end, publish, end
        "took": 0.004,
        "queued": 0.005,
        "gen0": 0.006,
        "gen1": 0.206,
        "store0": 0.207,
        "store1": 0.237,
        "publish": 0.238,
        "end": 0.250,
    }
    ns = {k: int((t0 + v) * S) for k, v in at.items()}
    root = tracer.start_span(
        "process requests",
        start_time=ns["took"],
        attributes={"messaging.kafka.message.key": request_id},
    )
    ctx = trace.set_span_in_context(root)
    for name, start, end in (
        ("decode", ns["took"], ns["queued"]),
        ("batch wait", ns["queued"], ns["gen0"]),
        ("store", ns["store0"], ns["store1"]),
        ("publish", ns["publish"], ns["publish"] + 1000),
    ):
        tracer.start_span(name, context=ctx, start_time=start).end(end_time=end)
    generate = tracer.start_span(
        "generate",
        context=trace.set_span_in_context(trace.INVALID_SPAN),
        links=[Link(root.get_span_context())],
        start_time=ns["gen0"],
    )
    generate.end(end_time=ns["gen1"])
    root.end(end_time=ns["end"])


def _spans() -> tuple[InMemorySpanExporter, trace.Tracer]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider.get_tracer("test")


def test_segments_follow_the_spans_and_add_up_to_the_whole() -> None:
    exporter, tracer = _spans()
    t0 = 1_800_000_000.0
    _request_spans(tracer, "r1", t0)
    marks = {"r1": (t0, t0 + 0.246), "lost": (t0, t0 + 1.0)}
    [split] = split_requests(exporter.get_finished_spans(), marks)
    got = {k: round(v * 1000, 3) for k, v in split.seconds.items()}
    assert got == {
        "kafka_in": 4.0,
        "admit": 1.0,
        "batch_wait": 1.0,
        "generate": 200.0,
        "to_store": 1.0,
        "store": 30.0,
        "to_publish": 1.0,
        "kafka_out": 8.0,
    }
    assert split.total == pytest.approx(0.246, abs=1e-6)
    assert tuple(split.seconds) == SEGMENTS


def test_requests_without_all_their_spans_are_left_out() -> None:
    exporter, tracer = _spans()
    t0 = 1_800_000_000.0
    _request_spans(tracer, "r1", t0)
    _request_spans(tracer, "r2", t0 + 1)
    spans = [
        s for s in exporter.get_finished_spans() if s.name != "store" or s.start_time > (t0 + 1) * S
    ]
    splits = split_requests(spans, {"r1": (t0, t0 + 0.3), "r2": (t0 + 1, t0 + 1.3)})
    assert [s.request_id for s in splits] == ["r2"]


def _three_requests() -> list[RequestSplit]:
    """Three requests whose results are read 12, 22 and 32 ms after they were published."""
    exporter, tracer = _spans()
    t0 = 1_800_000_000.0
    for i in range(3):
        _request_spans(tracer, f"r{i}", t0 + i)
    marks = {f"r{i}": (t0 + i, t0 + i + 0.25 + 0.01 * i) for i in range(3)}
    return split_requests(exporter.get_finished_spans(), marks)


def test_median_row() -> None:
    row = median_split(_three_requests())
    assert row["generate_ms"] == pytest.approx(200.0, abs=0.01)
    assert row["kafka_out_ms"] == pytest.approx(22.0, abs=0.01)  # 12, 22, 32 ms
    assert row["total_ms"] == pytest.approx(260.0, abs=0.01)
    assert median_split([]) == {}


def test_parts_cover_every_segment_once_and_sum_per_request() -> None:
    assert sorted(n for names in PARTS.values() for n in names) == sorted(SEGMENTS)
    row = median_parts(_three_requests())
    assert row["before_generation_ms"] == pytest.approx(6.0, abs=0.01)  # 4 + 1 + 1
    assert row["generation_ms"] == pytest.approx(200.0, abs=0.01)
    assert row["store_encode_ms"] == pytest.approx(31.0, abs=0.01)  # 1 to store + 30 store
    assert row["publish_ms"] == pytest.approx(23.0, abs=0.01)  # 1 + 22 at the median
    assert row["beyond_generation_ms"] == pytest.approx(60.0, abs=0.01)
    assert row["total_ms"] == pytest.approx(260.0, abs=0.01)
    assert median_parts([]) == {}
