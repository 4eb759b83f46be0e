"""Per tenant (``worker.tenants``): requests, images, GPU-seconds and failures.

``streamgen_tenant_requests_total{tenant,outcome}`` (consumed at admission or rejection,
succeeded / failed as the result is acknowledged: failures are ``outcome="failed"``),
``streamgen_tenant_images_total{tenant}`` and ``streamgen_tenant_gpu_seconds_total{tenant}``
(each batch's GPU time split between its requests by their pixel-steps, the cost the fair
share counts), and ``streamgen_tenant_deferred{tenant}``: requests set aside because their
tenant is at its cap on requests in flight (``worker.tenant_max_in_flight``).

The ``tenant`` label is bounded: a configured tenant by its name, every other (the empty
default tenant included) as ``other``. A request names its own tenant, so a label per name
would let any producer grow the worker's series without limit. Declared apart from
:class:`~streamgen.telemetry.metrics.Metrics` but on the same registry, by the worker's hooks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamgen.tenants import OTHER_TENANTS

__all__ = ["TenantMetrics", "TenantOutcome"]

TenantOutcome = Literal["consumed", "succeeded", "failed"]
OUTCOMES: tuple[TenantOutcome, ...] = ("consumed", "succeeded", "failed")


class TenantMetrics:
    def __init__(self, registry: CollectorRegistry, tenants: Collection[str] = ()) -> None:
        """``tenants``: the configured tenants' names; any other counts as ``other``."""
        self._named = frozenset(tenants)
        labels = sorted({*self._named, OTHER_TENANTS})
        self.requests = Counter(
            "streamgen_tenant_requests",
            "Requests per tenant: consumed, then their result acknowledged",
            ("tenant", "outcome"),
            registry=registry,
        )
        self.images = Counter(
            "streamgen_tenant_images", "Images generated per tenant", ("tenant",), registry=registry
        )
        self.gpu_seconds = Counter(
            "streamgen_tenant_gpu_seconds",
            "GPU time per tenant (a batch's time split by its requests' pixel-steps)",
            ("tenant",),
            registry=registry,
        )
        self.deferred = Gauge(
            "streamgen_tenant_deferred",
            "Requests set aside because their tenant is at its cap on requests in flight",
            ("tenant",),
            registry=registry,
        )
        self._deferred: dict[str, int] = {}  # as last set: most steps change nothing
        # Present at 0 so rate() sees a tenant's first request.
        for tenant in labels:
            self.deferred.labels(tenant)
            for outcome in OUTCOMES:
                self.requests.labels(tenant, outcome)
            self.images.labels(tenant)
            self.gpu_seconds.labels(tenant)

    def label(self, tenant: str) -> str:
        return tenant if tenant in self._named else OTHER_TENANTS

    def set_deferred(self, per_tenant: Mapping[str, int]) -> None:
        """Records set aside per tenant, summed by label; a label with none goes back to 0."""
        now: dict[str, int] = {}
        for tenant, n in per_tenant.items():
            label = self.label(tenant)
            now[label] = now.get(label, 0) + n
        for label in now.keys() | self._deferred.keys():
            if now.get(label, 0) != self._deferred.get(label, 0):
                self.deferred.labels(label).set(now.get(label, 0))
        self._deferred = now

    def count(self, tenant: str, outcome: TenantOutcome) -> None:
        self.requests.labels(self.label(tenant), outcome).inc()

    def batch(
        self, tenants: Sequence[str], costs: Sequence[float], images: Sequence[int], seconds: float
    ) -> None:
        """One batch: each request's tenant, pixel-steps and images made, and its GPU time."""
        total = sum(costs)
        for tenant, cost, made in zip(tenants, costs, images, strict=True):
            label = self.label(tenant)
            if made:
                self.images.labels(label).inc(made)
            if total > 0:
                self.gpu_seconds.labels(label).inc(seconds * cost / total)
