"""Tenants on the real broker and MinIO: a worker holding a large tenant's backlog serves a
small tenant's requests between the large one's batches, and every request of both completes
exactly once.

Evidence is the order of batches the engine ran, never wall-clock bounds: the first batch is
held until the worker has admitted every request of both tenants, so what follows is the
batcher's choice alone.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter

import pytest

from streamgen.engine import DiffusionEngine
from streamgen.settings import Settings, Tenant
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.work_item import WorkItem
from tests.integration.worker.conftest import (
    make_request,
    publish,
    read_dead_letters,
    read_results,
    with_worker,
    worker_thread,
)
from tests.integration.worker.engines import HoldFirstBatch

pytestmark = pytest.mark.integration

FLOOD, SMALL = 24, 8  # the large tenant's backlog; the small tenant's requests (batches of 4)


class WatchAdmission(WorkerHooks):
    """The real hooks; also says when every request in ``expected`` has been admitted."""

    expected: set[str]
    all_in: threading.Event

    def admitted(self, item: WorkItem) -> None:
        super().admitted(item)
        self.expected.discard(item.request.request_id)
        if not self.expected:
            self.all_in.set()


def test_a_small_tenant_is_served_between_a_large_tenants_batches_and_nothing_is_lost(
    worker_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamgen.worker.run")
    tenants = (Tenant("flood", 1.0), Tenant("small", 1.0))
    settings = with_worker(worker_settings, tenants=tenants)
    flood = [make_request(i, tenant="flood") for i in range(FLOOD)]
    small = [make_request(100 + i, tenant="small") for i in range(SMALL)]
    publish(settings, flood)
    hooks = WatchAdmission.from_settings(
        settings, worker_id="tenants-test", host=socket.gethostname()
    )
    hooks.expected = {r.request_id for r in [*flood, *small]}
    hooks.all_in = threading.Event()
    engine = HoldFirstBatch(DiffusionEngine(settings.engine), release=hooks.all_in)

    with worker_thread(settings, engine=engine, hooks=hooks) as worker:
        assert engine.started.wait(120), "the worker never started a batch"
        publish(settings, small)  # behind the whole flood, which is admitted already
        results = read_results(settings, expected=FLOOD + SMALL, timeout=300)
        assert worker.stop_and_wait() == 0

    tenant_of = {r.request_id: r.tenant for r in [*flood, *small]}
    batches = [{tenant_of[i] for i in batch} for batch in engine.batches]
    # The held first batch is the flood's; then the tenants alternate, equal weights and equal
    # costs, while the flood still has batches waiting: the small tenant never waits for it.
    assert batches[1:5] == [{"flood"}, {"small"}, {"flood"}, {"small"}], engine.batches
    assert all(b == {"flood"} for b in batches[5:]) and len(batches[5:]) >= 2, engine.batches
    # Nothing lost, nothing twice: every request one SUCCEEDED result naming its tenant.
    answered = Counter(r.request_id for r in read_results(settings))
    assert answered == Counter(tenant_of.keys())
    assert all(r.status == "SUCCEEDED" for r in results), results
    assert {r.request_id: r.tenant for r in results} == tenant_of
    assert read_dead_letters(settings) == []
    said = [r.getMessage() for r in caplog.records if "tenants share" in r.getMessage()]
    assert said == ["tenants share the GPU by weight: flood=1.0, small=1.0, others 1"]
    registry = hooks.metrics.registry
    for tenant, n in (("flood", FLOOD), ("small", SMALL)):
        labels = {"tenant": tenant, "outcome": "succeeded"}
        assert registry.get_sample_value("streamgen_tenant_requests_total", labels) == n
        assert registry.get_sample_value("streamgen_tenant_gpu_seconds_total", {"tenant": tenant})
