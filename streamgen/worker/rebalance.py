"""Partition assignment changes (cooperative-sticky), kept safe (DESIGN invariant 5).

* assigned: a fresh generation per partition; paused if the worker is paused, resumed
            otherwise (librdkafka keeps a pause flag across revoke and re-assign). The first
            assignment, even of nothing, makes a joining worker ready.
* revoked:  fetched records and waiting work of those partitions are dropped (the next
            owner reads them again), work already on the GPU or in the outputs gets a short
            grace to become durable, then the durable low-water mark is committed and the
            partitions are forgotten.
* lost:     forgotten without committing anything (another member may own them already),
            their fetched records and waiting work dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from streamgen.telemetry.metrics import RebalanceKind
from streamgen.worker.clients import RequestConsumer
from streamgen.worker.lifecycle import Lifecycle
from streamgen.worker.offsets import OffsetTracker, TopicPartitionKey
from streamgen.worker.work_queue import WorkQueue

__all__ = ["RebalanceHandler"]

log = logging.getLogger(__name__)


class RebalanceHandler:
    def __init__(
        self,
        *,
        tracker: OffsetTracker,
        lifecycle: Lifecycle,
        queue: WorkQueue,
        commit: Callable[[list[TopicPartitionKey]], None],
        serve_outputs: Callable[[float], None],
        adopt: Callable[[list[TopicPartition]], None],
        drop_fetched: Callable[[set[TopicPartitionKey]], int],
        revoke_grace_s: float,
        on_event: Callable[[RebalanceKind, list[TopicPartitionKey], int], None] | None = None,
    ) -> None:
        self._tracker = tracker
        self._life = lifecycle
        self._queue = queue
        self._commit = commit
        self._serve_outputs = serve_outputs
        self._adopt = adopt
        self._drop_fetched = drop_fetched
        self._grace_s = revoke_grace_s
        self._on_event = on_event

    def on_assign(self, consumer: RequestConsumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._tracker.assign((tp.topic, tp.partition))
        consumer.incremental_assign(partitions)
        self._adopt(partitions)
        self._life.joined()
        log.info("assigned %s", _names(partitions))
        self._event("assign", partitions)

    def on_revoke(self, consumer: RequestConsumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        # 1. Fetched records and waiting work are simply dropped: nothing was produced for them
        #    yet, and the next owner reads them again from the committed offset.
        self._drop_fetched(keys)
        dropped = self._queue.remove(lambda item: item.ticket.tp in keys)
        # 2. Work already generating or storing gets a short grace to become durable, so the
        #    next owner repeats as little as possible; none once the worker is closing (the
        #    revoke of its own close): generation has stopped, nothing more becomes durable.
        deadline = time.monotonic() + (0.0 if self._life.closing else self._grace_s)
        waiting = len(dropped)
        while time.monotonic() < deadline:
            outstanding = sum(self._tracker.outstanding(k) for k in keys)
            if outstanding <= waiting:
                break
            self._serve_outputs(0.05)
        # 3. Commit what is durable while we still own the partitions, then forget them.
        self._commit(sorted(keys))
        for key in keys:
            self._tracker.revoke(key)
        consumer.incremental_unassign(partitions)
        log.info("revoked %s (dropped %d waiting requests)", _names(partitions), len(dropped))
        self._event("revoke", partitions)

    def on_lost(self, consumer: RequestConsumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        for key in keys:
            self._tracker.revoke(key)
        self._drop_fetched(keys)
        self._queue.remove(lambda item: item.ticket.tp in keys)
        consumer.incremental_unassign(partitions)
        log.warning("lost %s: nothing committed for them", _names(partitions))
        self._event("lost", partitions)

    def _event(self, kind: RebalanceKind, partitions: list[TopicPartition]) -> None:
        if self._on_event:
            changed = [(tp.topic, tp.partition) for tp in partitions]
            self._on_event(kind, changed, len(self._tracker.partitions()))


def _names(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
