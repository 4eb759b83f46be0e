"""The batcher with tenants: inside a lane, GPU cost shared by weight; nothing lost or taken
twice; one tenant alone batches exactly as a batcher that knows no tenants."""

from __future__ import annotations

from functools import partial

from hypothesis import given
from hypothesis import strategies as st

from streamgen.worker.batcher import MicroBatcher
from streamgen.worker.lane_scheduler import LaneScheduler
from streamgen.worker.tenant_share import TenantShare

Item = tuple[str, int]  # (tenant, n)


def make(
    weights: dict[str, float] | None, size: int = 2, lanes: list[float] | None = None
) -> MicroBatcher[str, Item]:
    return MicroBatcher(
        max_wait_s=0.0,
        max_batch_size=lambda _: size,
        lanes=LaneScheduler(lanes or [1.0]),
        tenants=None if weights is None else partial(TenantShare, weights.__getitem__),
        tenant_of=lambda item: item[0],
    )


def drain(b: MicroBatcher[str, Item]) -> list[tuple[Item, ...]]:
    batches = []
    while (batch := b.next_batch(now=1.0)) is not None:
        batches.append(batch.items)
    return batches


def test_a_small_tenant_is_served_between_the_batches_of_a_flood_queued_before_it() -> None:
    b = make({"flood": 1.0, "small": 1.0})
    for n in range(40):
        b.add("s", ("flood", n), now=0.0)
    for n in range(4):
        b.add("s", ("small", n), now=0.5)
    tenants = [{tenant for tenant, _ in batch} for batch in drain(b)]
    assert tenants[:5] == [{"flood"}, {"small"}, {"flood"}, {"small"}, {"flood"}]
    assert len(tenants) == 22


def test_weights_set_each_tenants_share_of_the_batches() -> None:
    b = make({"a": 3.0, "b": 1.0}, size=1)
    for n in range(100):
        b.add("s", ("a", n), now=0.0)
        b.add("s", ("b", n), now=0.0)
    first = [batch[0][0] for batch in drain(b)][:80]
    assert first.count("a") == 60 and first.count("b") == 20


@given(
    st.floats(min_value=0.2, max_value=5.0),
    st.floats(min_value=0.2, max_value=5.0),
    st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from("xyz")), min_size=1, max_size=200),
    st.integers(min_value=1, max_value=4),
)
def test_while_two_tenants_wait_their_cost_keeps_their_weight_ratio_within_a_batch(
    wa: float, wb: float, adds: list[tuple[str, str]], size: int
) -> None:
    b = make({"a": wa, "b": wb}, size=size)
    for n, (tenant, shape) in enumerate(adds):
        b.add(shape, (tenant, n), now=0.0)
    served = {"a": 0, "b": 0}
    waiting = {t: sum(1 for tenant, _ in adds if tenant == t) for t in "ab"}
    while all(waiting.values()):
        batch = b.next_batch(now=1.0)
        assert batch is not None
        for tenant, _ in batch.items:
            served[tenant] += 1
            waiting[tenant] -= 1
        # A batch may hold the other tenant's rows too (rule 5): two batches' worth at most.
        assert abs(served["a"] / wa - served["b"] / wb) <= 2 * size / min(wa, wb) + 1e-9


@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from("xy"), st.sampled_from([0, 1])),
        max_size=120,
    ),
    st.integers(min_value=1, max_value=5),
)
def test_with_lanes_and_tenants_every_item_comes_out_once(
    adds: list[tuple[str, str, int]], size: int
) -> None:
    b = make({"a": 1.0, "b": 2.0, "c": 0.5}, size=size, lanes=[0.5, 0.2])
    for n, (tenant, shape, lane) in enumerate(adds):
        b.add(shape, (tenant, n), now=0.0, lane=lane)
    out = [item for batch in drain(b) for item in batch]
    assert sorted(out, key=lambda i: i[1]) == [(t, n) for n, (t, _, _) in enumerate(adds)]


@given(
    st.lists(st.tuples(st.sampled_from("xyz"), st.integers(-2, 2)), max_size=80),
    st.integers(min_value=1, max_value=5),
)
def test_one_tenant_alone_batches_as_without_tenants(
    adds: list[tuple[str, int]], size: int
) -> None:
    with_tenants, without = make({"t": 1.0}, size=size), make(None, size=size)
    for n, (shape, priority) in enumerate(adds):
        for b in (with_tenants, without):
            b.add(shape, ("t", n), now=0.0, priority=priority)
    assert drain(with_tenants) == drain(without)
