"""Per-tenant caps on requests in flight (``worker.tenant_max_in_flight``): what a tenant at its
cap sends is set aside here, not lost, and admitted as that tenant's requests finish, so one
tenant's flood cannot fill the window (``worker.max_in_flight``) and keep out another's.

A record's tenant is known only once it is decoded, so the cap is applied at admission (step 2
of the loop): a decoded record whose tenant has its cap's worth of requests in flight, or has
records set aside already (a tenant's records keep their order), is *deferred*. Why that keeps
DESIGN's invariants (at least once, contiguous commits, bounded redo):

1. The tracker is told (``OffsetTracker.defer``): a partition's commit point never passes a
   deferred offset, so after a crash or a lost partition the next owner reads it again.
2. The record is kept here, not in the fetch buffer: the rewinds that drop a partition's
   buffered records (a transient decode failure, a partition held at its share) cannot drop
   it, and the copy the consumer fetches again is recognised as seen and not taken twice.
3. A revoked or lost partition's records here are dropped with its buffered ones, and the
   tracker forgets its deferred offsets with the partition, after the revoke's commit that
   they bounded: the next owner reads them from there (at least once, never twice at once).
4. No deadlock. Durable work above a deferred record cannot be committed, so it keeps its place
   in the window; were the window to fill with it, the record holding it back could never be
   admitted. So while anything is set aside, the window's last place is kept for a record
   that holds its partition's commit point (the lowest offset of the partition not done), and
   when the window is otherwise full that record takes it whatever its tenant's cap. Once all
   the window's work is done, every partition with records set aside has such a record, and
   finishing it moves that partition's commit point, which frees a place again.
5. Bounded: at most ``max_records`` are set aside; the loop takes no more from the fetch buffer
   than fits here, so a full store fills the buffer, which then pauses the partitions.

Pure: the tracker is the only thing it talks to; records and spans are carried, not read.
"""

from __future__ import annotations

import sys
from collections import Counter, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from streamgen.contracts.request import GenerationRequest
from streamgen.worker.offsets import OffsetTracker, Ticket, TopicPartitionKey
from streamgen.worker.work_item import SourceRecord

__all__ = ["CapOf", "Deferrals", "Deferred"]

CapOf = Callable[[str], int]  # a tenant's cap on requests in flight; 0: none


@dataclass(frozen=True, slots=True)
class Deferred:
    """A decoded record set aside until its tenant has room."""

    record: SourceRecord
    request: GenerationRequest
    span: Any  # its tracing span, ended when it is admitted or dropped

    @property
    def key(self) -> tuple[TopicPartitionKey, int]:
        return (self.record.topic, self.record.partition), self.record.offset


class Deferrals:
    def __init__(
        self,
        tracker: OffsetTracker,
        cap_of: CapOf | None,
        *,
        max_records: int,
        lane_of: Callable[[TopicPartitionKey], int] = lambda _: 0,
        lane_reserve: int = 0,
    ) -> None:
        """``cap_of`` None: no tenant has a cap and nothing is ever set aside. ``lane_of`` and
        ``lane_reserve``: the lanes below the highest leave the window's last ``lane_reserve``
        places to it (request_lanes.py), records set aside as much as fetched ones."""
        if max_records < 1:
            raise ValueError(f"need max_records >= 1, got {max_records}")
        self._tracker = tracker
        self._cap_of = cap_of
        self.max_records = max_records
        self._lane_of = lane_of
        self._lane_reserve = lane_reserve
        # Per tenant, oldest first; the dict's order is the round among tenants. Entries no
        # longer in ``_index`` (admitted as commit holders, dropped) are skipped lazily.
        self._waiting: dict[str, deque[Deferred]] = {}
        self._index: dict[tuple[TopicPartitionKey, int], Deferred] = {}
        self._counts: Counter[str] = Counter()  # set aside, per tenant
        self._per_partition: Counter[TopicPartitionKey] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._tenant_of: dict[Ticket, str] = {}

    def __len__(self) -> int:
        return len(self._index)

    def counts(self) -> dict[str, int]:
        """Records set aside, per tenant that has any."""
        return dict(self._counts)

    def count(self, tp: TopicPartitionKey) -> int:
        """Records of ``tp`` set aside: waiting, as far as the stall watchdog is concerned."""
        return self._per_partition[tp]

    def in_flight(self, tenant: str) -> int:
        return self._in_flight[tenant]

    def room(self) -> int:
        """How many more records may be taken from the fetch buffer (each might be set aside);
        without caps nothing is ever set aside, so no bound of its own."""
        if self._cap_of is None:
            return sys.maxsize
        return self.max_records - len(self._index)

    def reserve(self) -> int:
        """Places at the window's end that only a commit point's holder may take (rule 4)."""
        return 1 if self._index else 0

    # -- admission -------------------------------------------------------------------------
    def defer(self, record: SourceRecord, request: GenerationRequest, span: Any) -> bool:
        """Set ``record`` aside if its tenant is at its cap or has records set aside already;
        False: admit it now."""
        tenant = request.tenant
        if self._cap_of is None or not (self._counts[tenant] or self._at_cap(tenant, 0)):
            return False
        entry = Deferred(record, request, span)
        tp, offset = entry.key
        self._tracker.defer(tp, offset)
        self._waiting.setdefault(tenant, deque()).append(entry)
        self._index[entry.key] = entry
        self._counts[tenant] += 1
        self._per_partition[tp] += 1
        return True

    def release(self, room: int) -> list[Deferred]:
        """Records set aside that go into ``room`` free places of the window now: each tenant's
        oldest first, as far as its cap allows, leaving the last place (rule 4) and the lanes'
        reserve; then, if that leaves the window otherwise full, one record holding its
        partition's commit point, whatever its tenant's cap."""
        out: list[Deferred] = []
        for tenant in list(self._waiting):
            queue = self._waiting[tenant]
            taken = 0
            while (entry := self._head(queue)) is not None and not self._at_cap(tenant, taken):
                lanes = self._lane_reserve if self._lane_of(entry.key[0]) else 0
                if len(out) >= room - self.reserve() - lanes:
                    break
                out.append(self._take(queue.popleft()))
                taken += 1
            if queue:
                self._waiting[tenant] = self._waiting.pop(tenant)  # to the back of the round
            else:
                del self._waiting[tenant]
        if room - len(out) == 1:
            holder = self._commit_holder()
            if holder is not None:
                out.append(self._take(holder))
        return out

    def started(self, ticket: Ticket, tenant: str) -> None:
        """``ticket``'s request was admitted to the GPU's queue: it counts against the cap."""
        if self._cap_of is not None:
            self._tenant_of[ticket] = tenant
            self._in_flight[tenant] += 1

    def finished(self, ticket: Ticket) -> None:
        """``ticket``'s outputs are durable (or it was stale): its place under the cap frees."""
        tenant = self._tenant_of.pop(ticket, None)
        if tenant is not None:
            self._in_flight[tenant] -= 1
            if not self._in_flight[tenant]:
                del self._in_flight[tenant]

    def drop(self, partitions: Collection[TopicPartitionKey]) -> list[Deferred]:
        """Forget the records set aside and the requests in flight of ``partitions`` (revoked or
        lost): the next owner reads the records again. Returns the records dropped."""
        dropped = [entry for key, entry in self._index.items() if key[0] in partitions]
        for entry in dropped:
            self._take(entry)
        for tenant, queue in list(self._waiting.items()):
            kept = deque(entry for entry in queue if entry.key in self._index)
            if kept:
                self._waiting[tenant] = kept
            else:
                del self._waiting[tenant]
        for ticket in [t for t in self._tenant_of if t.tp in partitions]:
            self.finished(ticket)
        return dropped

    # -- helpers ---------------------------------------------------------------------------
    def _at_cap(self, tenant: str, admitting: int) -> bool:
        cap = self._cap_of(tenant) if self._cap_of is not None else 0
        return cap > 0 and self._in_flight[tenant] + admitting >= cap

    def _head(self, queue: deque[Deferred]) -> Deferred | None:
        while queue and queue[0].key not in self._index:
            queue.popleft()  # taken out of turn (a commit holder) or dropped
        return queue[0] if queue else None

    def _take(self, entry: Deferred) -> Deferred:
        del self._index[entry.key]
        tenant, tp = entry.request.tenant, entry.key[0]
        self._counts[tenant] -= 1
        if not self._counts[tenant]:
            del self._counts[tenant]
        self._per_partition[tp] -= 1
        if not self._per_partition[tp]:
            del self._per_partition[tp]
        return entry

    def _commit_holder(self) -> Deferred | None:
        for key in self._tracker.commit_holders():
            if key in self._index:
                return self._index[key]
        return None
