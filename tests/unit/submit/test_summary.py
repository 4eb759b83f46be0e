"""The --wait summary: counts, failure codes, missing ids and latency percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.contracts.result import (
    GenerationResult,
    ResultError,
    StoredImage,
    Timings,
    WorkerIdentity,
)
from streamgen.submit.summary import percentile, summarize

T0 = datetime(2030, 1, 1, tzinfo=UTC)
WORKER = WorkerIdentity("w-1", "host")


def succeeded(rid: str, seconds: float, *, created: datetime | None = T0) -> GenerationResult:
    image = StoredImage(0, f"s3://b/{rid}/0.png", "b", f"{rid}/0.png", "image/png", "00", 1)
    timings = Timings(created_at=created, finished_at=T0 + timedelta(seconds=seconds))
    return GenerationResult(rid, "SUCCEEDED", WORKER, timings=timings, images=(image,))


def failed(rid: str, code: str) -> GenerationResult:
    error = ResultError(code, f"{code.lower()} happened", "validate")
    return GenerationResult(rid, "FAILED", WORKER, error=error)


def test_summary_counts_codes_missing_and_latency() -> None:
    results = {
        "a": succeeded("a", 1.0),
        "b": succeeded("b", 3.0),
        "c": failed("c", "INVALID_REQUEST"),
        "d": failed("d", "GENERATION_FAILED"),
        "e": failed("e", "INVALID_REQUEST"),
    }
    summary = summarize(["a", "b", "c", "d", "e", "f"], results, {})
    assert summary.succeeded == ["a", "b"]
    assert summary.missing == ["f"]
    assert summary.failure_codes == {"INVALID_REQUEST": 2, "GENERATION_FAILED": 1}
    assert (summary.p50, summary.p95) == (1.0, 3.0)
    text = "\n".join(summary.lines())
    assert "succeeded: 2\n  a: s3://b/a/0.png\n  b: s3://b/b/0.png\nfailed: 3" in text
    assert "failed: 3 (GENERATION_FAILED x1, INVALID_REQUEST x2)" in text
    assert "  c: INVALID_REQUEST: invalid_request happened" in text
    assert "missing (no result before the timeout): 1\n  f" in text
    assert "p50 1.000s  p95 3.000s  over 2" in text
    assert summary.as_json()["images"] == {"a": ["s3://b/a/0.png"], "b": ["s3://b/b/0.png"]}


def test_latency_falls_back_to_the_producers_created_at() -> None:
    result = succeeded("a", 5.0, created=None)
    summary = summarize(["a"], {"a": result}, {"a": T0 + timedelta(seconds=1)})
    assert summary.latencies_s == [4.0]


def test_no_latency_without_timings() -> None:
    summary = summarize(["a"], {"a": failed("a", "X")}, {})
    assert summary.p50 is None
    assert not any("latency" in line for line in summary.lines())


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([2.0], 95) == 2.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="not in"):
        percentile([1.0], 101)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1), st.floats(0, 100))
def test_percentile_is_a_sample_between_min_and_max(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert min(values) <= p <= max(values)
