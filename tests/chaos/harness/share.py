"""Share mode (``worker.mode=share``) in the chaos fleet: the group's configs, what each worker
says about the records it holds (its own /metrics), and liveness without committed offsets.

A share group commits no offsets, so :func:`all_served` is its liveness check (every
acknowledged record has its outcome) and the commit sampler has nothing to sample. What a
worker holds is read from its /metrics: ``streamgen_in_flight_requests`` is the size of its
current round (0 between rounds), and the share counters say what became of the records it
acknowledged (``streamgen/telemetry/share_metrics.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from streamgen.local.process import free_ports
from streamgen.ops.share_group import configure_share_group
from streamgen.settings import Settings
from streamgen.worker.share_startup import ShareGroupFacts, records_per_round
from tests.chaos.harness.follow import FleetOutputs
from tests.chaos.harness.load import Acked
from tests.chaos.harness.oracle import outcome_of

__all__ = [
    "IN_FLIGHT",
    "LOCK_MS",
    "all_served",
    "dead_letter_reasons",
    "round_size",
    "share_mode",
    "with_metrics_port",
]

LOCK_MS = 15_000  # the broker's shortest: records a worker no longer works on come back soonest
BROKER_DELIVERY_LIMIT = 5  # group.share.delivery.count.limit, the local broker's default
IN_FLIGHT = "streamgen_in_flight_requests"


def share_mode(settings: Settings) -> Settings:
    """``settings`` in share mode, its group configured on the broker: a 15 s lock, rounds due
    3 s before it (margin), 2 s allowed per batch of the tiny model."""
    settings = replace(
        settings,
        worker=replace(settings.worker, mode="share", share_lock_margin_s=3.0, share_batch_s=2.0),
    )
    configure_share_group(
        {"bootstrap.servers": settings.kafka.bootstrap_servers},
        settings.worker.group_id,
        lock_ms=LOCK_MS,
    )
    return settings


def round_size(settings: Settings) -> int:
    """The most records one worker holds at once (one round), as the worker computes it."""
    facts = ShareGroupFacts(lock_s=LOCK_MS / 1000, broker_delivery_limit=BROKER_DELIVERY_LIMIT)
    return records_per_round(settings, facts, settings.engine.max_batch_size)


def with_metrics_port(settings: Settings) -> tuple[Settings, int]:
    """``settings`` for one worker (re)start, with a /metrics port of its own."""
    [port] = free_ports(1)
    return replace(settings, worker=replace(settings.worker, metrics_port=port)), port


def all_served(topic: str, acked: list[Acked], outputs: FleetOutputs) -> bool:
    """Liveness without committed offsets: every acknowledged record has its outcome."""
    outputs.refresh(timeout=5)
    statuses: dict[str, set[str]] = {}
    for result in outputs.results():
        statuses.setdefault(result.request_id, set()).add(result.status)
    dead_at = {p for p in (d.position(topic) for d in outputs.dead_letters()) if p is not None}
    return all(outcome_of(a, statuses, dead_at) for a in acked)


def dead_letter_reasons(outputs: FleetOutputs, topic: str, acked: list[Acked]) -> dict[str, int]:
    """Dead letters of the acknowledged records, counted by their error code."""
    positions = {(a.partition, a.offset) for a in acked}
    return dict(
        Counter(
            d.headers.get("streamgen.error.code", "?")
            for d in outputs.dead_letters()
            if d.position(topic) in positions
        )
    )
