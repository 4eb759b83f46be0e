"""A real worker on the tiny model serves /metrics with the documented series and the right
values after a known run: 4 good requests and 1 undecodable record."""

from __future__ import annotations

import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamgen.engine.model_init import write_model
from streamgen.local.process import free_ports
from streamgen.settings import Settings
from tests.integration.worker.conftest import (
    make_request,
    publish,
    publish_raw,
    read_results,
    wait_until,
    worker_thread,
)

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_after_a_known_run(stack_settings: Settings, tmp_path: Path) -> None:
    model = tmp_path / "tiny"
    write_model("tiny", model)
    (port,) = free_ports(1)
    s = stack_settings
    settings = replace(
        s,
        engine=replace(s.engine, models={"tiny": str(model)}, device="cpu", max_batch_size=4),
        worker=replace(
            s.worker,
            group_id=f"metrics-{uuid.uuid4().hex[:6]}",
            max_wait_ms=300,
            commit_interval_ms=200,
            metrics_port=port,
            worker_id="metrics-worker",
        ),
    )
    requests = [make_request(i, num_images=1 + i % 2) for i in range(4)]
    images = sum(r.num_images for r in requests)
    with worker_thread(settings):
        publish(settings, requests)
        publish_raw(settings, [(b"broken", b"\x00\x01not avro")])
        assert len(read_results(settings, expected=4, timeout=120)) == 4

        def settled() -> bool:
            m = scrape(port)
            lag = [v for (n, _), v in m.items() if n == "streamgen_commit_lag_messages"]
            return (
                value(m, "streamgen_requests_succeeded_total", model="tiny") == 4
                and value(
                    m,
                    "streamgen_requests_dead_lettered_total",
                    model="unknown",
                    code="DECODE_ERROR",
                    stage="decode",
                )
                == 1
                and bool(lag)
                and sum(lag) == 0
            )

        assert wait_until(settled, timeout=30), scrape(port)
        m = scrape(port)
    assert value(m, "streamgen_requests_consumed_total", model="tiny") == 4
    assert value(m, "streamgen_requests_consumed_total", model="unknown") == 1
    assert value(m, "streamgen_images_generated_total", model="tiny") == images
    assert value(m, "streamgen_batch_size_sum", model="tiny") == 4
    batches = value(m, "streamgen_batch_size_count", model="tiny")
    assert batches is not None and 1 <= batches <= 4
    assert (
        value(m, "streamgen_request_latency_seconds_count", model="tiny", status="SUCCEEDED") == 4
    )
    assert value(m, "streamgen_queue_wait_seconds_count", model="tiny") == 4
    assert value(m, "streamgen_in_flight_requests") == 0
    assert value(m, "streamgen_assigned_partitions") == 3
    assert (value(m, "streamgen_rebalances_total", kind="assign") or 0) >= 1
    assert (value(m, "streamgen_commits_total") or 0) >= 1
    assert value(m, "streamgen_backlog_gpu_seconds") == 0
    info = [labels for (n, labels), _ in m.items() if n == "streamgen_worker_info"]
    assert info and ("worker_id", "metrics-worker") in info[0]
