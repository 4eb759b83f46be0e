"""Which owned partitions the consumer fetches: the one owner of every pause and resume.

Three reasons to pause, each with its own way back (step 5 of the loop):

* the whole worker, when the fetch buffer is full: resumed when it drained to half;
* one partition *held* at its share of the buffer (fetch_buffer.py, fairness): rewound to its
  first record dropped, resumed when it drained to half its share;
* one partition *blocked* by a transient decode failure: rewound to that record, resumed after
  a backoff. Tagged with the assignment generation: after a revoke and re-assign the
  partition restarts from its committed offset anyway, and a stale entry must not make the
  loop skip records the consumer never rewound for.

librdkafka keeps a partition's pause flag across revoke and re-assign, so a new assignment is
given the worker's state explicitly (:meth:`Pauses.adopt`), whichever way it points.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TopicPartition

from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.backoff import Backoff
from streamgen.worker.clients import RequestConsumer
from streamgen.worker.fetch_buffer import FetchBuffer
from streamgen.worker.offsets import OffsetTracker, TopicPartitionKey

__all__ = ["Pauses"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Blocked:
    until: float  # monotonic seconds
    attempt: int
    generation: int | None


class Pauses:
    def __init__(
        self,
        consumer: RequestConsumer,
        tracker: OffsetTracker,
        buffer: FetchBuffer[Any],
        decode_backoff: Backoff,
        hooks: WorkerHooks,
    ) -> None:
        self._consumer = consumer
        self._tracker = tracker
        self._buffer = buffer
        self._decode_backoff = decode_backoff
        self._hooks = hooks
        self.paused = False  # the whole worker
        self._blocked: dict[TopicPartitionKey, _Blocked] = {}

    def share(self) -> int:
        """How many buffered records each owned partition may hold."""
        return self._buffer.share(len(self._tracker.partitions()))

    def extend(self, records: list[Any]) -> None:
        """Buffer a poll's records; partitions past their share are held and rewound."""
        for tp, offset in self._buffer.extend(records, self.share()).items():
            self._rewind(tp, offset)  # fetched again once it has drained

    def blocked(self, tp: TopicPartitionKey) -> bool:
        self._forget_stale_block(tp)
        return tp in self._blocked

    def block(self, tp: TopicPartitionKey, offset: int, exc: Exception) -> None:
        """Transient decode failure: rewind the partition and retry it after a backoff."""
        previous = self._blocked.get(tp)
        attempt = previous.attempt if previous else 0
        delay = self._decode_backoff.delay(attempt)
        log.warning("cannot decode %s@%d yet (%s); retry in %.1fs", tp, offset, exc, delay)
        self._rewind(tp, offset)
        self._buffer.drop({tp})  # delivered again from the rewound offset
        self._blocked[tp] = _Blocked(
            time.monotonic() + delay, attempt + 1, self._tracker.generation(tp)
        )

    def apply(self) -> None:
        """Step 5: resume what may move again, pause everything when the buffer is full."""
        now = time.monotonic()
        for tp in list(self._blocked):
            blocked = self._blocked[tp] if self.blocked(tp) else None
            if blocked is not None and now >= blocked.until:
                del self._blocked[tp]
                if not self.paused and tp not in self._buffer.held():
                    self._consumer.resume([TopicPartition(*tp)])
        if not self.paused:
            # A partition held at its share of the buffer comes back once it drained to half.
            for tp in self._buffer.releasable(self.share()):
                if tp not in self._blocked:
                    self._buffer.release(tp)
                    self._consumer.resume([TopicPartition(*tp)])
        if not self.paused and self._buffer.full():
            self.set_paused(True)
        elif self.paused and self._buffer.below_half():
            self.set_paused(False)

    def set_paused(self, paused: bool) -> None:
        partitions = [TopicPartition(t, p) for t, p in self._tracker.partitions()]
        if paused:
            self._consumer.pause(partitions)
        else:
            stay = self._blocked.keys() | self._buffer.held().keys()
            self._consumer.resume([p for p in partitions if (p.topic, p.partition) not in stay])
        self.paused = paused
        self._hooks.paused(len(partitions) if paused else 0)

    def adopt(self, partitions: list[TopicPartition]) -> None:
        """Give newly assigned partitions the worker's pause state, whichever way it points.

        librdkafka keeps a partition's (application) pause flag across revoke and re-assign:
        a partition revoked while paused came back paused, and since nothing here paused it
        in its new life, nothing resumed it: it was never fetched again (issue 22, under
        KIP-848 after a kill -9 and a join). A stale hold or block of an earlier life is gone
        with the buffer's records (dropped at revoke) and the generation check.
        """
        if not partitions:
            return
        if self.paused:
            self._consumer.pause(partitions)
        else:
            self._consumer.resume(partitions)

    def _rewind(self, tp: TopicPartitionKey, offset: int) -> None:
        """Pause ``tp`` and move its fetch position back to ``offset``: what was fetched from
        there on and not kept is fetched again after the resume, so nothing is skipped."""
        partition = TopicPartition(tp[0], tp[1], offset)
        self._consumer.pause([partition])
        self._consumer.seek(partition)

    def _forget_stale_block(self, tp: TopicPartitionKey) -> None:
        blocked = self._blocked.get(tp)
        if blocked is not None and blocked.generation != self._tracker.generation(tp):
            del self._blocked[tp]
