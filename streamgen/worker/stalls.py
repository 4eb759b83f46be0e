"""The stall watchdog: an owned partition with records waiting and no fetch progress is reported.

Whatever the cause (a pause nothing resumes, a fetch position lost, a client bug), a partition
whose requests wait for ever looks to an operator exactly like loss (issue 22: a partition
stood still for minutes while the group showed this worker as its owner). So the loop reports
every record it fetches or admits as progress of its partition; a partition owned and without
progress for ``worker.stall_timeout_s`` is probed (records buffered here, or the broker's high
watermark past the consumer's position), and if records are waiting it is reported: one
warning log line and ``streamgen_partition_stalled_seconds{topic,partition}``, until it moves
again. Idle partitions (nothing waiting) are never reported, and neither is one that was found
idle and has records now: its records have waited only since some instant after that probe,
so its clock starts when the probe first finds them (a lane idle for minutes, then a burst held
back by a full window, is not a stall).

:class:`StallWatch` is the pure bookkeeping (instants passed in); :class:`StallWatchdog` adds
the probes, rate-limited, on the consumer loop's thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from confluent_kafka import TopicPartition

from streamgen.worker.clients import RequestConsumer
from streamgen.worker.offsets import TopicPartitionKey

__all__ = ["StallWatch", "StallWatchdog"]

log = logging.getLogger(__name__)

# A probe asks the broker for one partition's high watermark: short, because it runs on the
# consumer loop's thread, and a broker that does not answer in this long is itself a fault
# other parts report.
PROBE_TIMEOUT_S = 1.0

# (partition, seconds without progress while records wait, or None once it moves again)
OnStall = Callable[[TopicPartitionKey, float | None], None]


class StallWatch:
    """When each owned partition last moved, and which ones are reported stalled."""

    def __init__(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"stall timeout must be > 0 s, got {timeout_s}")
        self.timeout_s = timeout_s
        self._moved: dict[TopicPartitionKey, float] = {}
        self._stalled: set[TopicPartitionKey] = set()
        # Found idle by the last probe and not moved since: when records wait on one of these,
        # the wait began after that probe, not at the last movement.
        self._idle: set[TopicPartitionKey] = set()

    def own(self, partitions: Iterable[TopicPartitionKey], now: float) -> list[TopicPartitionKey]:
        """Follow exactly ``partitions`` (a new one counts as having moved now); return the
        stalled ones no longer owned (their report ends)."""
        owned = set(partitions)
        for tp in owned - self._moved.keys():
            self._moved[tp] = now
        gone = [tp for tp in self._moved if tp not in owned]
        for tp in gone:
            del self._moved[tp]
        ended = [tp for tp in gone if tp in self._stalled]
        self._stalled -= set(gone)
        self._idle -= set(gone)
        return ended

    def moved(self, tp: TopicPartitionKey, now: float) -> bool:
        """A record of ``tp`` was fetched or admitted; True if it had been reported stalled."""
        if tp in self._moved:
            self._moved[tp] = now
        self._idle.discard(tp)
        if tp in self._stalled:
            self._stalled.discard(tp)
            return True
        return False

    def suspects(self, now: float) -> list[TopicPartitionKey]:
        """Owned partitions without progress for longer than the timeout."""
        return [tp for tp, at in self._moved.items() if now - at > self.timeout_s]

    def still(self, tp: TopicPartitionKey, now: float) -> float:
        return now - self._moved.get(tp, now)

    def waiting(self, tp: TopicPartitionKey, now: float) -> bool:
        """A probe found records waiting on suspect ``tp``: True if they have waited without
        progress past the timeout. False for a partition the last probe found idle: its clock
        starts now, and a later probe decides."""
        if tp in self._idle:
            self._idle.discard(tp)
            self._moved[tp] = now
            return False
        return True

    def report(self, tp: TopicPartitionKey) -> bool:
        """Mark ``tp`` stalled; True the first time (the log line is said once per stall)."""
        first = tp not in self._stalled
        self._stalled.add(tp)
        return first

    def clear(self, tp: TopicPartitionKey, now: float) -> bool:
        """Nothing waits on ``tp``: it is idle, not stalled, and is not asked about again for
        another timeout. True if it had been reported stalled."""
        ended = self.moved(tp, now)
        if tp in self._moved:
            self._idle.add(tp)
        return ended


class StallWatchdog:
    def __init__(
        self,
        consumer: RequestConsumer,
        timeout_s: float,
        *,
        buffered: Callable[[TopicPartitionKey], int],
        on_stall: OnStall,
    ) -> None:
        self._consumer = consumer
        self._watch = StallWatch(timeout_s)
        self._buffered = buffered
        self._on_stall = on_stall
        # Probing more often than a quarter of the timeout would only cost broker round trips.
        self._every_s = timeout_s / 4
        self._next_check = time.monotonic() + self._every_s

    def moved(self, tp: TopicPartitionKey) -> None:
        if self._watch.moved(tp, time.monotonic()):
            log.info("partition %s[%d] is moving again", tp[0], tp[1])
            self._on_stall(tp, None)

    def check(self, owned: Iterable[TopicPartitionKey]) -> None:
        now = time.monotonic()
        for tp in self._watch.own(owned, now):
            self._on_stall(tp, None)
        if now < self._next_check:
            return
        self._next_check = now + self._every_s
        for tp in self._watch.suspects(now):
            waiting = self._waiting(tp)
            if waiting is None:
                return  # the broker did not answer: ask again at the next check, not now
            if waiting == 0:
                if self._watch.clear(tp, now):
                    self._on_stall(tp, None)
                continue
            if not self._watch.waiting(tp, now):
                continue  # found idle last time: its records have waited since then at most
            still = self._watch.still(tp, now)
            if self._watch.report(tp):
                log.warning(
                    "partition %s[%d] stalled: %d records waiting and no fetch progress for "
                    "%.0f s (worker.stall_timeout_s=%g)",
                    tp[0],
                    tp[1],
                    waiting,
                    still,
                    self._watch.timeout_s,
                )
            self._on_stall(tp, still)

    def _waiting(self, tp: TopicPartitionKey) -> int | None:
        """Records of ``tp`` not yet admitted: buffered here, or in the log past the consumer's
        position; None when the broker did not answer."""
        buffered = self._buffered(tp)
        if buffered:
            return buffered
        partition = TopicPartition(tp[0], tp[1])
        try:
            marks = self._consumer.get_watermark_offsets(partition, timeout=PROBE_TIMEOUT_S)
            if marks is None:
                return 0
            # Nothing consumed yet in this assignment (a partition that came back paused never
            # is): it starts from its committed offset, or the log's start.
            [position] = self._consumer.position([partition])
            if position.offset < 0:
                [position] = self._consumer.committed([partition], timeout=PROBE_TIMEOUT_S)
        except Exception as exc:  # the broker is away: other parts report that, not a stall
            log.debug("stall probe of %s failed: %s", tp, exc)
            return None
        low, high = marks
        return max(high - max(position.offset, low), 0)
