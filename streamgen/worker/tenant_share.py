"""Which tenant is served next: weighted fair queueing of GPU cost (pixel-steps).

Pure logic (no clocks, no Kafka). Each tenant present has a *normalised service*: the GPU cost
served to it divided by its weight (worker.tenants; worker.tenant_default_weight for the
others). The batcher, once it has chosen a lane, asks :meth:`TenantShare.choose` which of the
lane's tenants with work waiting goes next: the one with the least normalised service. Then
it charges what the batch served to each tenant.

A tenant that comes (back) with work after having none starts at the least normalised service
of those present, not where it left off: time it had nothing to run cannot be banked and spent
later as a burst that shuts the others out. A tenant with nothing waiting is forgotten, so
memory is bounded by the tenants present, whatever names requests carry.

What this gives (tests/unit/worker/test_tenant_share.py, Hypothesis): while two tenants are
both waiting and each batch serves one tenant, their normalised services never differ by more
than one batch's cost over the smaller weight, so over any such stretch their GPU costs stand
in their weights' ratio within a batch or two; a tenant alone gets everything; and a tenant
with work waiting is chosen within a bounded number of batches (no starvation).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

__all__ = ["TenantShare"]


class TenantShare:
    def __init__(self, weight: Callable[[str], float]) -> None:
        self._weight = weight
        self._service: dict[str, float] = {}  # tenant present -> cost served / weight

    def choose(self, waiting: Collection[str]) -> str:
        """The tenant among ``waiting`` to serve next (ties: the smaller name, to be stable)."""
        if not waiting:
            raise ValueError("no tenant waiting")
        self._present(waiting)
        return min(waiting, key=lambda tenant: (self._service[tenant], tenant))

    def charge(self, served: Mapping[str, float], waiting: Collection[str]) -> None:
        """Account the cost just served to each tenant, among those that had work waiting."""
        self._present(set(waiting) | set(served))
        for tenant, cost in served.items():
            if cost < 0:
                raise ValueError(f"cost served to {tenant!r} must be >= 0, got {cost}")
            self._service[tenant] += cost / self._weight(tenant)
        # Only differences matter: keep the numbers small however long the worker runs.
        floor = min(self._service.values(), default=0.0)
        for tenant in self._service:
            self._service[tenant] -= floor

    def service(self, tenant: str) -> float | None:
        """The tenant's normalised service relative to the least present; None if absent."""
        return self._service.get(tenant)

    def _present(self, waiting: Collection[str]) -> None:
        """Forget the tenants with nothing waiting; newcomers start at the least present."""
        for tenant in [t for t in self._service if t not in waiting]:
            del self._service[tenant]
        floor = min(self._service.values(), default=0.0)
        for tenant in waiting:
            self._service.setdefault(tenant, floor)
