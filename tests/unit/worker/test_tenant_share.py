"""Weighted fair queueing between tenants (streamgen/worker/tenant_share.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.worker.tenant_share import TenantShare

MAX_BATCH_COST = 50.0
weights = st.floats(min_value=0.1, max_value=10.0)
batch_costs = st.lists(st.floats(min_value=1.0, max_value=MAX_BATCH_COST), min_size=1, max_size=300)


def _run(share: TenantShare, tenants: list[str], costs: list[float]) -> dict[str, float]:
    """Serve one batch a choice, each to the chosen tenant; every tenant waits throughout."""
    served = dict.fromkeys(tenants, 0.0)
    for cost in costs:
        tenant = share.choose(tenants)
        share.charge({tenant: cost}, tenants)
        served[tenant] += cost
    return served


@given(weights, weights, batch_costs)
def test_two_backlogged_tenants_share_in_their_weights_ratio_within_one_batch(
    wa: float, wb: float, costs: list[float]
) -> None:
    share = TenantShare({"a": wa, "b": wb}.__getitem__)
    served = _run(share, ["a", "b"], costs)
    # In cost: a's service differs from what its weight entitles it to, given b's, by at
    # most one batch's cost (scaled to a's weight when b is the lighter one).
    bound = MAX_BATCH_COST / min(wa, wb)
    assert abs(served["a"] / wa - served["b"] / wb) <= bound + 1e-6


@given(weights, weights, batch_costs, st.integers(min_value=0, max_value=299))
def test_any_window_of_a_backlogged_pair_keeps_the_ratio_within_two_batches(
    wa: float, wb: float, costs: list[float], start: int
) -> None:
    share = TenantShare({"a": wa, "b": wb}.__getitem__)
    start = min(start, len(costs))
    _run(share, ["a", "b"], costs[:start])  # whatever came before the window
    after = _run(share, ["a", "b"], costs[start:])
    # Each end of the window is within one batch (over the lighter weight) of the ratio.
    assert abs(after["a"] / wa - after["b"] / wb) <= 2 * MAX_BATCH_COST / min(wa, wb) + 1e-6


@given(batch_costs)
def test_a_tenant_alone_gets_everything(costs: list[float]) -> None:
    share = TenantShare(lambda _: 1.0)
    served = _run(share, ["only"], costs)
    assert served["only"] == pytest.approx(sum(costs))


@given(st.lists(weights, min_size=2, max_size=5), batch_costs)
def test_no_waiting_tenant_starves(tenant_weights: list[float], costs: list[float]) -> None:
    names = [f"t{i}" for i in range(len(tenant_weights))]
    share = TenantShare(dict(zip(names, tenant_weights, strict=True)).__getitem__)
    # Between two choices of a tenant, every other tenant gains at most its gap plus one
    # batch each: bounded by the weights and batch costs alone, never by how long it runs.
    ratio = max(tenant_weights) / min(tenant_weights)
    limit = len(names) * (math.ceil(MAX_BATCH_COST * ratio) + 1) + 1
    last_served = dict.fromkeys(names, -1)
    for i, cost in enumerate(costs):
        tenant = share.choose(names)
        share.charge({tenant: cost}, names)
        last_served[tenant] = i
        for name in names:
            assert i - last_served[name] <= limit, f"{name} waited {i - last_served[name]}"


def test_a_light_tenant_is_served_while_a_heavy_backlog_waits() -> None:
    share = TenantShare({"flood": 1.0, "small": 1.0}.__getitem__)
    order = []
    for _ in range(6):
        tenant = share.choose(["flood", "small"])
        share.charge({tenant: 10.0}, ["flood", "small"])
        order.append(tenant)
    assert order == ["flood", "small"] * 3


def test_weights_set_the_ratio() -> None:
    share = TenantShare({"a": 3.0, "b": 1.0}.__getitem__)
    served = _run(share, ["a", "b"], [1.0] * 400)
    assert served["a"] == 300 and served["b"] == 100


def test_a_returning_tenant_cannot_spend_time_it_was_away() -> None:
    share = TenantShare(lambda _: 1.0)
    _run(share, ["a", "b"], [10.0] * 4)
    _run(share, ["a"], [10.0] * 20)  # b away: a alone
    # Back, b starts level with a: it does not get the 20 batches it missed in a row.
    order = []
    for _ in range(4):
        tenant = share.choose(["a", "b"])
        share.charge({tenant: 10.0}, ["a", "b"])
        order.append(tenant)
    assert sorted(order) == ["a", "a", "b", "b"]


def test_forgets_tenants_with_nothing_waiting() -> None:
    share = TenantShare(lambda _: 1.0)
    share.charge({"gone": 5.0}, ["gone", "stays"])
    share.choose(["stays"])
    assert share.service("gone") is None


def test_refuses_no_tenant_and_negative_cost() -> None:
    share = TenantShare(lambda _: 1.0)
    with pytest.raises(ValueError, match="no tenant waiting"):
        share.choose([])
    with pytest.raises(ValueError, match="must be >= 0"):
        share.charge({"a": -1.0}, ["a"])
