"""A per-tenant cap on the real broker and MinIO (worker.tenant_max_in_flight): a flooding
tenant's backlog, written ahead of a small tenant's requests in the same partitions, does not
fill the window; the small tenant's requests are admitted while the flood waits set aside, and
every request of both completes exactly once, every offset committed.

Evidence is the order of admissions and of batches, never wall-clock bounds: the engine holds
its first batch until the small tenant's requests are all admitted, so nothing of the flood
finishes (and frees a place under its cap) before that.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter

import pytest

from streamgen.engine import DiffusionEngine
from streamgen.settings import Settings, TenantCap
from streamgen.worker.work_item import WorkItem
from tests.integration.worker.conftest import (
    all_committed,
    make_request,
    publish,
    read_dead_letters,
    read_results,
    wait_until,
    with_worker,
    worker_thread,
)
from tests.integration.worker.engines import HoldFirstBatch
from tests.integration.worker.test_tenants import WatchAdmission

pytestmark = pytest.mark.integration

FLOOD, SMALL, CAP, WINDOW = 24, 3, 2, 8


class WatchOrder(WatchAdmission):
    """Says when every request in ``expected`` was admitted, and notes the tenants admitted,
    in order."""

    admitted_tenants: list[str]

    def admitted(self, item: WorkItem) -> None:
        self.admitted_tenants.append(item.request.tenant)  # before ``all_in`` may be set
        super().admitted(item)


def test_a_capped_flood_leaves_the_window_to_a_small_tenant_behind_it_and_nothing_is_lost(
    worker_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamgen.worker.run")
    settings = with_worker(
        worker_settings, max_in_flight=WINDOW, tenant_max_in_flight=(TenantCap("flood", CAP),)
    )
    flood = [make_request(i, tenant="flood") for i in range(FLOOD)]
    small = [make_request(100 + i, tenant="small") for i in range(SMALL)]
    publish(settings, flood)
    publish(settings, small)  # behind the flood in every partition they share
    hooks = WatchOrder.from_settings(settings, worker_id="caps-test", host=socket.gethostname())
    hooks.expected = {r.request_id for r in small}
    hooks.admitted_tenants = []
    hooks.all_in = threading.Event()
    release = threading.Event()
    engine = HoldFirstBatch(DiffusionEngine(settings.engine), release=release)
    registry = hooks.metrics.registry

    def set_aside(tenant: str) -> float | None:
        return registry.get_sample_value("streamgen_tenant_deferred", {"tenant": tenant})

    with worker_thread(settings, engine=engine, hooks=hooks) as worker:
        assert hooks.all_in.wait(120), f"small tenant not admitted: {hooks.admitted_tenants}"
        # The small tenant came in past the flood, of which only its cap's worth was admitted
        # (none of it can finish yet): the rest waits set aside, not in the window.
        assert Counter(hooks.admitted_tenants[: CAP + SMALL]) == {"flood": CAP, "small": SMALL}
        assert wait_until(lambda: set_aside("flood") == FLOOD - CAP, 60), set_aside("flood")
        release.set()
        results = read_results(settings, expected=FLOOD + SMALL, timeout=300)
        assert wait_until(lambda: all_committed(settings), 60)
        assert worker.stop_and_wait() == 0

    # Served early: the small tenant's requests all ran in the first two batches.
    tenant_of = {r.request_id: r.tenant for r in [*flood, *small]}
    early = {i for batch in engine.batches[:2] for i in batch}
    assert {r.request_id for r in small} <= early, engine.batches
    # Nothing lost, nothing twice: every request one SUCCEEDED result naming its tenant.
    assert Counter(r.request_id for r in results) == Counter(tenant_of.keys())
    assert all(r.status == "SUCCEEDED" for r in results), results
    assert {r.request_id: r.tenant for r in results} == tenant_of
    assert read_dead_letters(settings) == []
    said = [r.getMessage() for r in caplog.records if "caps on requests" in r.getMessage()]
    assert said == [f"tenants' caps on requests in flight: flood={CAP}, others no cap"]
    assert set_aside("flood") == 0
    labels = {"tenant": "flood", "outcome": "succeeded"}
    assert registry.get_sample_value("streamgen_tenant_requests_total", labels) == FLOOD
