from __future__ import annotations

import urllib.request
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streamgen.telemetry.metrics import Metrics


def fresh(**kwargs: object) -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return Metrics(registry, **kwargs), registry  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_request_lifecycle_counts_each_outcome_once() -> None:
    metrics, r = fresh(models=["tiny"])
    metrics.request_consumed("tiny", pixel_steps=64 * 64 * 4)
    metrics.request_consumed("tiny")
    metrics.request_consumed("")
    metrics.request_finished("tiny", "SUCCEEDED", queue_wait_s=0.3, e2e_s=1.5)
    metrics.request_finished(
        "tiny", "FAILED", error_code="GENERATION_FAILED", stage="generate", e2e_s=2.0
    )
    metrics.dead_lettered("tiny", "GENERATION_FAILED", "generate")
    metrics.dead_lettered("", "DECODE_ERROR", "decode")

    assert value(r, "streamgen_requests_consumed_total", model="tiny") == 2
    assert value(r, "streamgen_requests_consumed_total", model="unknown") == 1
    assert value(r, "streamgen_requests_succeeded_total", model="tiny") == 1
    assert (
        value(
            r,
            "streamgen_requests_failed_total",
            model="tiny",
            code="GENERATION_FAILED",
            stage="generate",
        )
        == 1
    )
    assert (
        value(
            r,
            "streamgen_requests_dead_lettered_total",
            model="unknown",
            code="DECODE_ERROR",
            stage="decode",
        )
        == 1
    )
    assert value(r, "streamgen_queue_wait_seconds_count", model="tiny") == 1
    assert value(r, "streamgen_queue_wait_seconds_sum", model="tiny") == pytest.approx(0.3)
    assert (
        value(r, "streamgen_request_latency_seconds_sum", model="tiny", status="SUCCEEDED") == 1.5
    )
    assert value(r, "streamgen_request_latency_seconds_count", model="tiny", status="FAILED") == 1


OUTCOMES = st.lists(
    st.tuples(
        st.sampled_from(["tiny", "sd15", "other", ""]),
        st.sampled_from(["SUCCEEDED", "FAILED"]),
        st.sampled_from(["GENERATION_FAILED", "INVALID_REQUEST", ""]),
    ),
    max_size=30,
)


@given(OUTCOMES)
def test_every_outcome_lands_in_its_own_series(outcomes: list[tuple[str, str, str]]) -> None:
    # Labelled children are remembered per series: each event must still count in its own.
    metrics, r = fresh(models=["tiny", "sd15"])
    for model, status, code in outcomes:
        metrics.request_consumed(model)
        metrics.request_finished(model, status, error_code=code, stage="generate", e2e_s=1.0)  # type: ignore[arg-type]
    label = {"tiny": "tiny", "sd15": "sd15", "other": "unknown", "": "unknown"}
    consumed = Counter(label[m] for m, _, _ in outcomes)
    succeeded = Counter(label[m] for m, s, _ in outcomes if s == "SUCCEEDED")
    failed = Counter((label[m], c or "UNKNOWN") for m, s, c in outcomes if s == "FAILED")
    for model in ("tiny", "sd15", "unknown"):
        assert (value(r, "streamgen_requests_consumed_total", model=model) or 0) == consumed[model]
        assert (value(r, "streamgen_requests_succeeded_total", model=model) or 0) == succeeded[
            model
        ]
        for code in ("GENERATION_FAILED", "INVALID_REQUEST", "UNKNOWN"):
            labels = {"model": model, "code": code, "stage": "generate"}
            found = value(r, "streamgen_requests_failed_total", **labels) or 0
            assert found == failed[(model, code)]


def test_models_outside_the_served_set_share_one_label() -> None:
    metrics, r = fresh(models=["tiny"])
    for name in ("a", "b", "c"):
        metrics.request_consumed(name)
    assert value(r, "streamgen_requests_consumed_total", model="unknown") == 3
    assert value(r, "streamgen_requests_consumed_total", model="a") is None


def test_negative_latency_from_clock_skew_is_clamped_to_zero() -> None:
    metrics, r = fresh()
    metrics.request_finished("m", "SUCCEEDED", e2e_s=-3.0)
    assert value(r, "streamgen_request_latency_seconds_sum", model="m", status="SUCCEEDED") == 0
    assert (
        value(
            r, "streamgen_request_latency_seconds_bucket", model="m", status="SUCCEEDED", le="0.1"
        )
        == 1
    )


def test_batch_feeds_histograms_and_image_counter() -> None:
    metrics, r = fresh()
    metrics.observe_batch("m", size=8, gpu_seconds=2.0, images=16)
    metrics.observe_batch("m", size=1, gpu_seconds=0.5, images=1)
    assert value(r, "streamgen_batch_size_count", model="m") == 2
    assert value(r, "streamgen_batch_size_sum", model="m") == 9
    assert value(r, "streamgen_batch_size_bucket", model="m", le="1.0") == 1
    assert value(r, "streamgen_batch_gpu_seconds_sum", model="m") == 2.5
    assert value(r, "streamgen_images_generated_total", model="m") == 17


def test_commit_lag_and_gpu_seconds_backlog() -> None:
    metrics, r = fresh()
    # Nothing measured yet: the backlog gauge stays unset (0) rather than guessing.
    metrics.set_commit_lag("req", 0, log_end=10, committed=4)
    assert value(r, "streamgen_commit_lag_messages", topic="req", partition="0") == 6
    assert metrics.backlog_gpu_seconds_estimate() is None
    # Requests cost 1000 pixel-steps each; the GPU does 500 pixel-steps per second.
    metrics.request_consumed("m", pixel_steps=1000)
    metrics.observe_batch("m", size=2, gpu_seconds=4.0, images=2, pixel_steps=2000)
    assert value(r, "streamgen_backlog_gpu_seconds") == 6 * 1000 / 500
    metrics.set_commit_lag("req", 1, log_end=5, committed=-1001)  # nothing committed yet
    assert value(r, "streamgen_commit_lag_messages", topic="req", partition="1") == 5
    assert value(r, "streamgen_backlog_gpu_seconds") == 11 * 2.0


def test_revoked_partitions_stop_exporting_lag() -> None:
    metrics, r = fresh()
    metrics.rebalanced("assign", assigned=2, partitions=[("req", 0), ("req", 1)])
    metrics.set_commit_lag("req", 0, log_end=3, committed=0)
    metrics.set_commit_lag("req", 1, log_end=3, committed=1)
    metrics.rebalanced("revoke", assigned=1, partitions=[("req", 0)])
    assert value(r, "streamgen_commit_lag_messages", topic="req", partition="0") is None
    assert value(r, "streamgen_commit_lag_messages", topic="req", partition="1") == 2
    assert value(r, "streamgen_assigned_partitions") == 1
    assert value(r, "streamgen_rebalances_total", kind="assign") == 1
    assert value(r, "streamgen_rebalances_total", kind="revoke") == 1
    assert value(r, "streamgen_rebalances_total", kind="lost") == 0
    metrics.rebalanced("lost", assigned=0, partitions=[("req", 1), ("req", 7)])
    assert value(r, "streamgen_commit_lag_messages", topic="req", partition="1") is None


def test_unknown_rebalance_kind_is_refused() -> None:
    metrics, _ = fresh()
    with pytest.raises(ValueError, match="rebalance kind 'moved'"):
        metrics.rebalanced("moved", assigned=0)  # type: ignore[arg-type]


def test_gauges_counters_and_info() -> None:
    metrics, r = fresh()
    metrics.set_in_flight(7)
    metrics.set_paused_partitions(3)
    metrics.committed(2)
    metrics.committed(0)  # an empty commit point set sends nothing
    metrics.store_retry()
    metrics.produce_retry()
    metrics.produce_retry()
    metrics.set_worker_info(worker_id="w1", host="h", device="cpu", group_id="g")
    assert value(r, "streamgen_in_flight_requests") == 7
    assert value(r, "streamgen_paused_partitions") == 3
    assert value(r, "streamgen_commits_total") == 1
    assert value(r, "streamgen_store_retries_total") == 1
    assert value(r, "streamgen_produce_retries_total") == 2
    assert (
        value(
            r,
            "streamgen_worker_info",
            worker_id="w1",
            host="h",
            device="cpu",
            group_id="g",
            version="",
        )
        == 1
    )


def test_two_containers_on_separate_registries_do_not_clash() -> None:
    a, ra = fresh()
    _, rb = fresh()
    a.store_retry()
    assert value(ra, "streamgen_store_retries_total") == 1
    assert value(rb, "streamgen_store_retries_total") == 0


def test_series_names_cover_every_family_including_gpu() -> None:
    metrics, _ = fresh()
    names = metrics.series_names()
    for name in (
        "streamgen_requests_consumed_total",
        "streamgen_batch_size_bucket",
        "streamgen_request_latency_seconds_count",
        "streamgen_commit_lag_messages",
        "streamgen_backlog_gpu_seconds",
        "streamgen_gpu_utilization_ratio",
        "streamgen_gpu_memory_bytes",
        "streamgen_worker_info",
    ):
        assert name in names
    assert "streamgen_not_a_series" not in names


def test_serve_exposes_the_injected_registry_over_http() -> None:
    metrics, _ = fresh()
    metrics.set_in_flight(5)
    server = metrics.serve(0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert "streamgen_in_flight_requests 5.0" in body
    assert "# TYPE streamgen_requests_consumed_total counter" in body
