"""Committing the OffsetTracker's durable low-water marks to the group coordinator.

Two ways, for two needs:

* ``commit_async`` on the loop's interval. The consumer loop must keep polling whatever the
  coordinator does: a synchronous commit during a broker restart waits for the new coordinator
  and can hold the loop past ``max.poll.interval.ms``, which makes the worker leave the group.
  At most one asynchronous commit is in flight, so commits reach the broker in order and a
  slow coordinator is not buried under a queue of them; the answer comes back through the
  consumer's ``on_commit`` callback, on the consumer thread, during a poll.
* ``commit_sync`` where the caller must know before going on: a revoke (the partitions are
  handed over right after) and shutdown.

Only an answer from the broker moves the tracker's committed offset, and only for the
assignment generation the commit was made in (a partition revoked and re-assigned while the
answer was on its way starts from scratch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamgen.worker.clients import RequestConsumer
from streamgen.worker.offsets import OffsetTracker, TopicPartitionKey

__all__ = ["Committer"]

log = logging.getLogger(__name__)

# An asynchronous commit unanswered for this long no longer holds back the next one.
STALE_COMMIT_S = 30.0

OnCommitted = Callable[[dict[TopicPartitionKey, int], dict[TopicPartitionKey, int]], None]


@dataclass(frozen=True)
class _Pending:
    points: dict[TopicPartitionKey, tuple[int, int | None]]  # tp -> (offset, generation)
    log_ends: dict[TopicPartitionKey, int]
    sent_at: float


class Committer:
    """Owned by the consumer thread, like the tracker it reads."""

    def __init__(
        self,
        tracker: OffsetTracker,
        *,
        on_committed: OnCommitted,
        stale_after_s: float = STALE_COMMIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tracker = tracker
        self._on_committed = on_committed
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._pending: _Pending | None = None

    @property
    def in_flight(self) -> bool:
        return self._pending is not None

    def commit_async(self, consumer: RequestConsumer) -> None:
        """Send the current commit points unless an earlier commit is still unanswered."""
        if self._pending is not None:
            waited = self._clock() - self._pending.sent_at
            if waited < self._stale_after_s:
                return
            log.warning("commit unanswered after %.0fs; sending a newer one", waited)
        points = self._tracker.commit_points()
        if not points:
            return
        try:
            consumer.commit(offsets=_partitions(points), asynchronous=True)
        except KafkaException as exc:
            log.warning("commit not sent, will retry: %s", exc)
            return
        self._pending = _Pending(
            points={tp: (off, self._tracker.generation(tp)) for tp, off in points.items()},
            log_ends=_log_ends(consumer, points),
            sent_at=self._clock(),
        )

    def on_commit(self, error: KafkaError | None, partitions: Sequence[TopicPartition]) -> None:
        """The consumer's ``on_commit`` callback: the broker's answer to an asynchronous commit."""
        pending = self._pending
        answered = {(tp.topic, tp.partition): tp.offset for tp in partitions}
        if pending is None or answered != {tp: off for tp, (off, _) in pending.points.items()}:
            return  # the answer to a commit this committer no longer waits for
        self._pending = None
        if error is not None:
            log.warning("commit failed, will retry: %s", error)
            return
        generations = {tp: generation for tp, (_, generation) in pending.points.items()}
        confirmed = self._confirm(partitions, generations)
        if confirmed:
            self._on_committed(confirmed, pending.log_ends)

    def commit_sync(
        self, consumer: RequestConsumer, only: list[TopicPartitionKey] | None = None
    ) -> None:
        """Commit now and wait for the answer (revoke, shutdown)."""
        points = self._tracker.commit_points()
        if only is not None:
            points = {tp: off for tp, off in points.items() if tp in only}
        if not points:
            return
        try:
            answered = consumer.commit(offsets=_partitions(points), asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed: %s", exc)
            return
        generations = {tp: self._tracker.generation(tp) for tp in points}
        confirmed = self._confirm(answered or [], generations)
        if confirmed:
            self._on_committed(confirmed, _log_ends(consumer, confirmed))

    def _confirm(
        self,
        answers: Sequence[TopicPartition],
        generations: dict[TopicPartitionKey, int | None],
    ) -> dict[TopicPartitionKey, int]:
        """Move the tracker by each partition the broker accepted; log the ones it refused."""
        confirmed = {}
        for tp in answers:
            key = (tp.topic, tp.partition)
            if tp.error is not None:
                log.warning("commit of %s[%d] failed: %s", tp.topic, tp.partition, tp.error)
            elif self._tracker.confirm(key, tp.offset, generations.get(key)):
                confirmed[key] = tp.offset
        return confirmed


def _partitions(points: dict[TopicPartitionKey, int]) -> list[TopicPartition]:
    return [TopicPartition(t, p, off) for (t, p), off in points.items()]


def _log_ends(
    consumer: RequestConsumer, points: dict[TopicPartitionKey, int]
) -> dict[TopicPartitionKey, int]:
    """High watermarks from the consumer's cache (no broker round trip) for lag metrics."""
    ends = {}
    for topic, partition in points:
        marks = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        if marks is not None and marks[1] >= 0:
            ends[(topic, partition)] = marks[1]
    return ends
