"""streamgen_tenant_*: requests, images, GPU-seconds and failures per tenant, counted by the
worker's hooks; configured tenants by name, every other as 'other'."""

from __future__ import annotations

import pytest
from PIL import Image
from prometheus_client import CollectorRegistry

from streamgen.configuration import load_settings
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import GenerationOutcome
from streamgen.errors import DecodeError, GenerationFailed
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.events import OutcomeSummary
from streamgen.worker.offsets import Ticket
from streamgen.worker.work_item import SourceRecord, WorkItem


def item(tenant: str, steps: int = 4) -> WorkItem:
    record = SourceRecord("t", 0, 0, None, b"", (), 0)
    request = GenerationRequest("r", "p", width=64, height=64, steps=steps, tenant=tenant)
    return WorkItem(Ticket("t", 0, 0, 1), record, request, received_at=0.0)


def sample(r: CollectorRegistry, name: str, **labels: str) -> float | None:
    return r.get_sample_value(f"streamgen_tenant_{name}_total", labels)


def hooks() -> WorkerHooks:
    settings = load_settings({"worker.tenants": "search=3,ads=1"}, env={})
    return WorkerHooks.from_settings(settings, worker_id="w", host="h")


def test_requests_and_failures_per_tenant_unnamed_ones_as_other() -> None:
    h = hooks()
    r = h.metrics.registry
    h.admitted(item("search"))
    h.admitted(item("someone-new"))
    h.rejected(None, DecodeError("not Avro"), topic="t")
    h.durable(OutcomeSummary("SUCCEEDED", "a", "default", tenant="search"))
    h.durable(OutcomeSummary("FAILED", "b", "default", tenant="someone-new"))
    assert sample(r, "requests", tenant="search", outcome="consumed") == 1
    assert sample(r, "requests", tenant="search", outcome="succeeded") == 1
    assert sample(r, "requests", tenant="other", outcome="consumed") == 2
    assert sample(r, "requests", tenant="other", outcome="failed") == 1
    assert sample(r, "requests", tenant="ads", outcome="consumed") == 0  # present at 0
    assert sample(r, "requests", tenant="someone-new", outcome="consumed") is None


def test_a_batchs_gpu_time_is_split_by_pixel_steps_and_images_counted_per_tenant() -> None:
    h = hooks()
    r = h.metrics.registry
    items = [item("search", steps=3), item("ads", steps=1), item("x", steps=4)]
    image = Image.new("RGB", (64, 64))
    outcomes = [
        GenerationOutcome(items[0].request, 1, images=(image,)),
        GenerationOutcome(items[1].request, 2, images=(image,)),
        GenerationOutcome(items[2].request, 3, error=GenerationFailed("boom")),
    ]
    h.batch(items, outcomes, gpu_seconds=8.0)
    assert sample(r, "gpu_seconds", tenant="search") == pytest.approx(3.0)
    assert sample(r, "gpu_seconds", tenant="ads") == pytest.approx(1.0)
    assert sample(r, "gpu_seconds", tenant="other") == pytest.approx(4.0)
    assert sample(r, "images", tenant="search") == 1
    assert sample(r, "images", tenant="other") == 0


def test_without_tenants_configured_every_request_is_other() -> None:
    h = WorkerHooks.from_settings(load_settings({}, env={}), worker_id="w", host="h")
    h.admitted(item("anything"))
    assert sample(h.metrics.registry, "requests", tenant="other", outcome="consumed") == 1


def test_requests_set_aside_per_tenant_summed_by_label_and_back_to_zero() -> None:
    settings = load_settings(
        {"worker.tenants": "search=3", "worker.tenant_max_in_flight": "flood=2"}, env={}
    )
    h = WorkerHooks.from_settings(settings, worker_id="w", host="h")
    r = h.metrics.registry

    def deferred(tenant: str) -> float | None:
        return r.get_sample_value("streamgen_tenant_deferred", {"tenant": tenant})

    assert (deferred("search"), deferred("flood"), deferred("other")) == (0.0, 0.0, 0.0)
    h.deferred({"flood": 40, "a": 3, "b": 2})
    assert (deferred("flood"), deferred("other")) == (40.0, 5.0)
    h.deferred({"a": 1})
    assert (deferred("flood"), deferred("other")) == (0.0, 1.0)
