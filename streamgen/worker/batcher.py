"""Micro-batching: group waiting requests by shape, close batches by size or by age.

Pure logic (no clocks, no threads): callers pass ``now`` in seconds.

Rules, in the order they are applied when the GPU asks for work:

1. A shape's batch is *ready* when it holds its maximum batch size, or when its oldest item has
   waited ``max_wait_s``, or when the batcher is flushing (shutdown drains everything).
2. Priority lanes (``topics.lanes``; one lane without them): the lane the batch is for is the
   :class:`~streamgen.worker.lane_scheduler.LaneScheduler`'s choice among the lanes with items
   in ready shapes: the highest, unless a lower one is owed its minimum share of GPU cost
   (``cost`` of each item, pixel-steps in the worker). When the highest lane holding any item
   has none in a ready shape, its shapes count as ready too: waiting to fill them would only
   hand the GPU to a lower lane meanwhile.
3. Tenants (``worker.tenants``; without them every item is one tenant's): inside the lane,
   the tenant the batch is for is the :class:`~streamgen.worker.tenant_share.TenantShare`'s
   (one per lane) choice among the lane's tenants with items in ready shapes: the one with
   the least GPU cost served per weight. The lane first, then the tenant within it: a lane's
   minimum share holds whoever floods it, and a tenant's flood in one lane cannot take the
   share of another lane.
4. Among the ready shapes holding the lane's (and tenant's) items, the one holding its
   highest-priority item goes first, unless another such shape has already been passed over
   ``fairness`` times: then the oldest waiting shape goes first. Priority therefore reorders
   work but cannot starve any shape.
5. Within a shape, the lane's items are taken first (its tenant's before its other tenants'),
   then the other lanes' (highest lane first) to fill the batch: a batch of one shape costs
   the GPU about the same whoever its rows are for, so a bulk row in an interactive batch's
   free places is throughput for free. Within a lane, items are taken by priority (higher
   first), then arrival order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from streamgen.worker.lane_scheduler import LaneScheduler
from streamgen.worker.tenant_share import TenantShare

__all__ = ["Batch", "MicroBatcher"]

T = TypeVar("T")
S = TypeVar("S", bound=Hashable)


@dataclass(slots=True)
class _Waiting(Generic[T]):
    item: T
    priority: int
    arrived: float
    seq: int
    lane: int
    tenant: str = ""


@dataclass(slots=True)
class _ShapeQueue(Generic[T]):
    items: list[_Waiting[T]] = field(default_factory=list)
    passed_over: int = 0

    def oldest(self) -> float:
        return min(w.arrived for w in self.items)

    def top_priority(self, lane: int, tenant: str | None) -> int:
        return max(w.priority for w in self.items if _of(w, lane, tenant))

    def lanes(self) -> set[int]:
        return {w.lane for w in self.items}

    def holds(self, lane: int, tenant: str | None) -> bool:
        return any(_of(w, lane, tenant) for w in self.items)


@dataclass(frozen=True, slots=True)
class Batch(Generic[S, T]):
    shape: S
    items: tuple[T, ...]


class MicroBatcher(Generic[S, T]):
    def __init__(
        self,
        *,
        max_wait_s: float,
        max_batch_size: Callable[[S], int],
        fairness: int = 4,
        lanes: LaneScheduler | None = None,
        cost: Callable[[T], float] = lambda _: 1.0,
        tenants: Callable[[], TenantShare] | None = None,
        tenant_of: Callable[[T], str] = lambda _: "",
    ) -> None:
        """``tenants`` makes each lane's TenantShare (None: tenants are not told apart)."""
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if fairness < 0:
            raise ValueError(f"fairness must be >= 0, got {fairness}")
        self._max_wait_s = max_wait_s
        self._max_batch_size = max_batch_size
        self._fairness = fairness
        self._lanes = lanes or LaneScheduler([1.0])
        lanes_n = self._lanes.lanes
        self._cost = cost
        self._tenant_shares = None if tenants is None else [tenants() for _ in range(lanes_n)]
        self._tenant_of = tenant_of
        self._queues: dict[S, _ShapeQueue[T]] = {}
        self._seq = itertools.count()
        self._flushing = False

    def __len__(self) -> int:
        return sum(len(q.items) for q in self._queues.values())

    def add(self, shape: S, item: T, *, now: float, priority: int = 0, lane: int = 0) -> None:
        if not 0 <= lane < self._lanes.lanes:
            raise ValueError(f"lane must be in 0..{self._lanes.lanes - 1}, got {lane}")
        queue = self._queues.setdefault(shape, _ShapeQueue())
        tenant = self._tenant_of(item) if self._tenant_shares is not None else ""
        queue.items.append(_Waiting(item, priority, now, next(self._seq), lane, tenant))

    def flush(self) -> None:
        """From now on every waiting item is ready at once (used when draining)."""
        self._flushing = True

    def _limit(self, shape: S) -> int:
        limit = self._max_batch_size(shape)
        if limit < 1:
            raise ValueError(f"max batch size for {shape!r} must be >= 1, got {limit}")
        return limit

    def _ready(self, shape: S, queue: _ShapeQueue[T], now: float) -> bool:
        return (
            self._flushing
            or len(queue.items) >= self._limit(shape)
            or now - queue.oldest() >= self._max_wait_s
        )

    def next_batch(self, now: float) -> Batch[S, T] | None:
        """Close and return the batch to run next, or None if no shape is ready yet."""
        ready = [(s, q) for s, q in self._queues.items() if self._ready(s, q, now)]
        if not ready:
            return None
        ready = self._with_top_lane(ready)
        # Each lane with ready work: the shape it would run, and what its rows there cost.
        picks = {lane: self._pick_shape(ready, lane, None) for lane in _lanes_in(ready)}
        costs = {
            lane: self._lane_cost(queue, lane, shape) for lane, (shape, queue) in picks.items()
        }
        lane = self._lanes.choose(costs)
        tenants = self._tenants_waiting(ready, lane)
        tenant = None
        if self._tenant_shares is not None:
            tenant = self._tenant_shares[lane].choose(tenants)
        shape, queue = self._pick_shape(ready, lane, tenant)
        for other_shape, other in ready:
            if other_shape != shape:
                other.passed_over += 1
        queue.items.sort(
            key=lambda w: (w.lane != lane, w.lane, w.tenant != tenant, -w.priority, w.seq)
        )
        limit = self._limit(shape)
        taken, queue.items = queue.items[:limit], queue.items[limit:]
        queue.passed_over = 0
        if not queue.items:
            del self._queues[shape]
        self._charge(taken, costs, lane, tenants)
        return Batch(shape, tuple(w.item for w in taken))

    def _tenants_waiting(self, ready: list[tuple[S, _ShapeQueue[T]]], lane: int) -> set[str]:
        return {w.tenant for _, queue in ready for w in queue.items if w.lane == lane}

    def _charge(
        self, taken: list[_Waiting[T]], lanes: Collection[int], lane: int, tenants: set[str]
    ) -> None:
        """What the batch served, to the lanes and to the chosen lane's tenants."""
        served: dict[int, float] = {}
        by_tenant: dict[str, float] = {}
        for waiting in taken:
            cost = self._cost(waiting.item)
            served[waiting.lane] = served.get(waiting.lane, 0.0) + cost
            if waiting.lane == lane:
                by_tenant[waiting.tenant] = by_tenant.get(waiting.tenant, 0.0) + cost
        self._lanes.charge(served, lanes)
        if self._tenant_shares is not None:
            self._tenant_shares[lane].charge(by_tenant, tenants)

    def _with_top_lane(
        self, ready: list[tuple[S, _ShapeQueue[T]]]
    ) -> list[tuple[S, _ShapeQueue[T]]]:
        """Rule 2's exception: the highest lane's shapes are ready while only lower lanes' are."""
        top = min(lane for queue in self._queues.values() for lane in queue.lanes())
        if top in _lanes_in(ready):
            return ready
        shapes = {shape for shape, _ in ready}
        waiting = [(s, q) for s, q in self._queues.items() if s not in shapes and top in q.lanes()]
        return ready + waiting

    def _pick_shape(
        self, ready: list[tuple[S, _ShapeQueue[T]]], lane: int, tenant: str | None
    ) -> tuple[S, _ShapeQueue[T]]:
        """Rule 4: the shape a batch for ``lane`` (and ``tenant``, unless None) takes."""
        pool = [(s, q) for s, q in ready if q.holds(lane, tenant)]
        starved = [(s, q) for s, q in pool if q.passed_over >= self._fairness]
        if starved:
            return min(starved, key=lambda sq: sq[1].oldest())
        return min(pool, key=lambda sq: (-sq[1].top_priority(lane, tenant), sq[1].oldest()))

    def _lane_cost(self, queue: _ShapeQueue[T], lane: int, shape: S) -> float:
        """What the lane's own rows of its next batch cost (the scheduler's 'next work')."""
        own = [w for w in queue.items if w.lane == lane][: self._limit(shape)]
        return sum(self._cost(w.item) for w in own)

    def seconds_until_ready(self, now: float) -> float | None:
        """How long until some shape becomes ready by age (0 if one is ready now)."""
        if not self._queues:
            return None
        waits = []
        for shape, queue in self._queues.items():
            if self._ready(shape, queue, now):
                return 0.0
            waits.append(queue.oldest() + self._max_wait_s - now)
        return max(0.0, min(waits))

    def remove(self, predicate: Callable[[T], bool]) -> list[T]:
        """Take out every waiting item matching ``predicate`` (e.g. of revoked partitions)."""
        removed: list[T] = []
        for shape in list(self._queues):
            queue = self._queues[shape]
            keep = [w for w in queue.items if not predicate(w.item)]
            removed.extend(w.item for w in queue.items if predicate(w.item))
            queue.items = keep
            if not keep:
                del self._queues[shape]
        return removed

    def __iter__(self) -> Iterator[T]:
        for queue in self._queues.values():
            for waiting in queue.items:
                yield waiting.item


def _of(waiting: _Waiting[T], lane: int, tenant: str | None) -> bool:
    return waiting.lane == lane and (tenant is None or waiting.tenant == tenant)


def _lanes_in(ready: list[tuple[S, _ShapeQueue[T]]]) -> set[int]:
    return {lane for _, queue in ready for lane in queue.lanes()}
