"""The queue-control mix of scenario 15 (issue 25): requests spread over priority lanes, each
naming a tenant once the request schema has one, and cancels for a fraction of them published
while the fleet is under faults.

The harness's other tools (LoadGenerator, CommitSampler, judge, settle) know one requests
topic; :func:`lane_view` gives them one lane's topic as ``topics.requests``, so each lane is
published, sampled and judged as a fleet without lanes would be.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from streamgen.contracts.request import GenerationRequest
from streamgen.lanes import lane_topic
from streamgen.settings import Settings
from streamgen.submit.cancel import cancel_requests
from tests.chaos.harness.follow import FleetOutputs
from tests.integration.worker.conftest import make_request

__all__ = [
    "CancelOutcomes",
    "CancelStorm",
    "cancel_outcomes",
    "lane_view",
    "per_tenant",
    "request_maker",
]


def lane_view(settings: Settings, lane: str) -> Settings:
    """``settings`` as the harness sees lane ``lane``: its topic as the one requests topic."""
    topics = replace(settings.topics, requests=lane_topic(settings.topics, lane), lanes=())
    return replace(settings, topics=topics)


def tenants_supported() -> bool:
    """Does the request schema name a tenant (issue 25, being added)?"""
    return "tenant" in {f.name for f in dataclasses.fields(GenerationRequest)}


def request_maker(
    lane: str,
    made: list[str],
    tenants: Sequence[str] = (),
    tenant_of: dict[str, str] | None = None,
    **fields: Any,
) -> Callable[[int], GenerationRequest]:
    """``make(i)`` for LoadGenerator.stream_until_stopped: the i-th request of ``lane`` (with
    ``fields``), its id appended to ``made`` (what CancelStorm may cancel), its tenant taken in
    turn from ``tenants`` when the request schema has a tenant field (until then the list is
    not used: the mix runs with lanes and cancels alone) and kept in ``tenant_of`` by id."""
    use_tenants = bool(tenants) and tenants_supported()

    def make(i: int) -> GenerationRequest:
        tenant = {"tenant": tenants[i % len(tenants)]} if use_tenants else {}
        request = make_request(i, prompt=f"a {lane} request number {i}", **fields, **tenant)
        if use_tenants and tenant_of is not None:
            tenant_of[request.request_id] = tenant["tenant"]
        made.append(request.request_id)
        return request

    return make


class CancelStorm:
    """Cancels a fraction of the requests made on a background thread, each a random delay
    after it was made: some cancels reach a worker before the request's batch, some during it,
    some after its result (which then stands).

    Counted from when a request is made, not from its acknowledgement: the load generator
    learns of an acknowledgement only at its next send, up to 1/rate later, by which time the
    request has mostly been served. A cancel may so reach the topic before its request does;
    the worker then remembers it and ends the request at intake.
    """

    def __init__(
        self,
        settings: Settings,
        made: list[str],
        rng: random.Random,
        *,
        fraction: float,
        max_delay_s: float,
        interval_s: float = 0.5,
    ) -> None:
        self._settings = settings
        self._made = made  # appended to by the load threads: read by index, never iterated
        self._rng = rng  # this thread's own: the scenario's rng draws the kill instants
        self._fraction = fraction
        self._max_delay_s = max_delay_s
        self._interval_s = interval_s
        self._seen = 0  # how many of made were considered
        self._due: dict[str, float] = {}  # chosen, not yet published: id -> when
        self.cancelled: set[str] = set()  # published and acknowledged by the broker
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-cancels", daemon=True)

    def __enter__(self) -> CancelStorm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def stop(self) -> frozenset[str]:
        """Stop choosing; publish every cancel still due at once; return the ids cancelled."""
        self._stop.set()
        self._thread.join(60)
        if self._thread.is_alive():
            raise AssertionError("cancel storm still publishing after 60 s")
        if self._error is not None:
            raise AssertionError(f"cancel storm failed: {self._error!r}") from self._error
        self._choose()
        self._publish(list(self._due))
        return frozenset(self.cancelled)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval_s):
                self._choose()
                now = time.monotonic()
                self._publish([rid for rid, at in self._due.items() if at <= now])
        except BaseException as exc:  # re-raised by stop(), in the scenario's thread
            self._error = exc

    def _choose(self) -> None:
        now = time.monotonic()
        while self._seen < len(self._made):
            request_id = self._made[self._seen]
            self._seen += 1
            if self._rng.random() < self._fraction:
                self._due[request_id] = now + self._rng.uniform(0.0, self._max_delay_s)

    def _publish(self, request_ids: list[str]) -> None:
        if not request_ids:
            return
        cancel_requests(self._settings, request_ids, reason="chaos scenario 15")
        self.cancelled.update(request_ids)
        for request_id in request_ids:
            del self._due[request_id]


@dataclass(frozen=True)
class CancelOutcomes:
    """How the cancelled requests among ``ids`` ended, and what must never happen."""

    cancels: int  # requests cancelled
    cancelled: int  # of them, answered CANCELLED (perhaps after a SUCCEEDED a redo repeated)
    finished_first: int  # of them, answered SUCCEEDED only: done before the cancel came
    wrongly_cancelled: list[str]  # requests nobody cancelled with a CANCELLED result

    def figures(self) -> tuple[int, int, int]:
        return self.cancels, self.cancelled, self.finished_first


def cancel_outcomes(
    outputs: FleetOutputs, ids: set[str], cancelled: frozenset[str]
) -> CancelOutcomes:
    codes: dict[str, set[str]] = {}
    for result in outputs.results():
        if result.request_id in ids:
            code = result.error.code if result.error is not None else result.status
            codes.setdefault(result.request_id, set()).add(code)
    mine = ids & cancelled
    answered = {rid for rid in mine if "CANCELLED" in codes.get(rid, set())}
    succeeded = {rid for rid in mine - answered if "SUCCEEDED" in codes.get(rid, set())}
    wrong = sorted(rid for rid in ids - cancelled if "CANCELLED" in codes.get(rid, set()))
    return CancelOutcomes(len(mine), len(answered), len(succeeded), wrong)


def per_tenant(
    ids: Sequence[str], lost: Sequence[str], outputs: FleetOutputs, tenant_of: dict[str, str]
) -> dict[str, list[int]]:
    """Requests, lost and duplicate results per tenant, of the requests ``ids`` (a lane's
    acknowledged requests; ``lost``: those the oracle found without an outcome)."""
    results = Counter(r.request_id for r in outputs.results())
    lost_ids = set(lost)
    figures: dict[str, list[int]] = {}
    for request_id in ids:
        row = figures.setdefault(tenant_of.get(request_id, "-"), [0, 0, 0])
        row[0] += 1
        row[1] += request_id in lost_ids
        row[2] += max(0, results[request_id] - 1)
    return figures
