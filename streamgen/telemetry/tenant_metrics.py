"""Per tenant (``worker.tenants``): requests, images, GPU-seconds and failures.

``streamgen_tenant_requests_total{tenant,outcome}`` (consumed at admission or rejection,
succeeded / failed as the result is acknowledged: failures are ``outcome="failed"``),
``streamgen_tenant_images_total{tenant}`` and ``streamgen_tenant_gpu_seconds_total{tenant}``
(each batch's GPU time split between its requests by their pixel-steps, the cost the fair
share counts).

The ``tenant`` label is bounded: a configured tenant by its name, every other (the empty
default tenant included) as ``other``. A request names its own tenant, so a label per name
would let any producer grow the worker's series without limit. Declared apart from
:class:`~streamgen.telemetry.metrics.Metrics` but on the same registry, by the worker's hooks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

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
        # Present at 0 so rate() sees a tenant's first request.
        for tenant in labels:
            for outcome in OUTCOMES:
                self.requests.labels(tenant, outcome)
            self.images.labels(tenant)
            self.gpu_seconds.labels(tenant)

    def label(self, tenant: str) -> str:
        return tenant if tenant in self._named else OTHER_TENANTS

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
