"""The worker's consumer loop: short on purpose, each step numbered, the ordering rule here.

THE RULE (DESIGN invariant 2): an offset is committed only when every offset below it on its
partition has its images stored and its result or dead letter acknowledged by the broker. It is
enforced in one place: tickets are completed (step 4) only from broker acknowledgements, and
commits (step 6, ``commits.Committer``) only ever take the OffsetTracker's contiguous low-water
mark. Stopping keeps it the same way, in one sequence (``close_out``): stop generation, flush the
producer, turn its acknowledgements into completed tickets, and only then commit.

Whether to go on, drain or close out is read from the worker's one
:class:`~streamgen.worker.lifecycle.Lifecycle`; what other threads report (durable outcomes,
fatal errors) arrives on the one :class:`~streamgen.worker.events.LoopEvents` queue.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from streamgen.contracts.request import GenerationRequest
from streamgen.errors import CancelRequested, TransientError
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.backoff import Backoff
from streamgen.worker.cancels import CancelSet
from streamgen.worker.clients import OutputSender, RequestConsumer, consume_promptly
from streamgen.worker.commits import Committer
from streamgen.worker.deferrals import CapOf, Deferrals
from streamgen.worker.events import LoopEvents, durable_outcomes
from streamgen.worker.fetch_buffer import FetchBuffer
from streamgen.worker.intake import Intake, Rejected
from streamgen.worker.lifecycle import Lifecycle, Phase
from streamgen.worker.offsets import OffsetTracker, TopicPartitionKey
from streamgen.worker.outputs import OutcomeSink
from streamgen.worker.pauses import Pauses
from streamgen.worker.progress import NO_PROGRESS, ProgressReporter
from streamgen.worker.stalls import StallWatchdog
from streamgen.worker.work_item import SourceRecord, WorkItem
from streamgen.worker.work_queue import WorkQueue

__all__ = ["ConsumerLoop", "LoopLimits"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.1  # short: the loop must also serve delivery reports and commits
# While work is uncommitted, completions and commit answers are what the loop waits for: a
# 100 ms nap in the poll would hold each turn of the window back by that much.
BUSY_POLL_TIMEOUT_S = 0.005
MAX_RECORDS_PER_POLL = 500


@dataclass(frozen=True)
class LoopLimits:
    max_in_flight: int
    commit_interval_s: float
    drain_timeout_s: float
    # Places of the window the lower priority lanes leave to the highest (request_lanes.py).
    lane_reserve: int = 0


class ConsumerLoop:
    """Runs on the main thread; owns the consumer and the OffsetTracker."""

    def __init__(
        self,
        *,
        consumer: RequestConsumer,
        publisher: OutputSender,
        tracker: OffsetTracker,
        work: WorkQueue,
        intake: Intake,
        cancels: CancelSet,
        sink: OutcomeSink,
        outputs: ThreadPoolExecutor,
        limits: LoopLimits,
        events: LoopEvents,
        lifecycle: Lifecycle,
        decode_backoff: Backoff,
        hooks: WorkerHooks,
        committer: Committer,
        buffer: FetchBuffer[Any],
        stalls: StallWatchdog,
        progress: ProgressReporter = NO_PROGRESS,
        tenant_caps: CapOf | None = None,
    ) -> None:
        self.consumer = consumer
        self.publisher = publisher
        self.tracker = tracker
        self.work = work
        self.intake = intake
        self.cancels = cancels
        self.sink = sink
        self.outputs = outputs  # the output threads' pool: closing cancels what waits in it
        self.limits = limits
        self.events = events
        self.life = lifecycle
        self.hooks = hooks
        self.committer = committer
        self.buffer = buffer
        self.stalls = stalls
        self.progress = progress  # PICKED_UP events (worker.progress)
        self.pauses = Pauses(consumer, tracker, buffer, decode_backoff, hooks)
        # Records a tenant's cap set aside (worker.tenant_max_in_flight); none without caps.
        self.deferrals = Deferrals(
            tracker,
            tenant_caps,
            max_records=buffer.max_records,
            lane_of=buffer.lane_of,
            lane_reserve=limits.lane_reserve,
        )
        self._last_commit = time.monotonic()

    @property
    def paused(self) -> bool:
        return self.pauses.paused

    def run(self) -> None:
        """Until a stop is asked for or a fatal error arrives (the lifecycle says which)."""
        while self.life.serving:
            self.step()

    def step(self) -> None:
        # 1. Poll into the fetch buffer. Keeps group membership alive while the GPU works, and
        #    keeps records flowing while the window is full (fetch_buffer.py says why).
        room = self.limits.max_in_flight - self.tracker.uncommitted()
        timeout = BUSY_POLL_TIMEOUT_S if room < self.limits.max_in_flight else POLL_TIMEOUT_S
        if self._buffer_room() > 0 and len(self.buffer):
            timeout = 0.0  # records are waiting to be admitted now
        messages = consume_promptly(
            self.consumer, max(1, min(MAX_RECORDS_PER_POLL, self.buffer.room())), timeout
        )
        records = [m for m in messages if not _is_error(m)]
        for tp in {(m.topic(), m.partition()) for m in records}:
            self.stalls.moved(tp)
        self.pauses.extend(records)  # each partition up to its share (fairness)
        # 2. Admit as far as the window of uncommitted work has room: max_in_flight bounds
        #    what a crash makes us redo. First what tenants' caps set aside and now allow
        #    (deferrals.py), then from the buffer, round-robin across partitions (the highest
        #    priority lane first, each lane its minimum share). Decode + validate; bad records
        #    are dead-lettered at once; a tenant at its cap has its records set aside.
        for deferred in self.deferrals.release(room):
            self.stalls.moved(deferred.key[0])
            self._hand_out(deferred.record, deferred.request, deferred.span)
        for message in self.buffer.take(self._buffer_room(), self.limits.lane_reserve):
            self._admit(message)
        # 3. Serve the producer: delivery reports arrive here and become durable events.
        # 4. Complete the tickets whose outputs the broker acknowledged.
        self.serve_outputs(0.0)
        # 5. Backpressure: pause every partition when the fetch buffer is full, resume at
        #    half; resume a partition held at its share once it drained to half its share
        #    (pauses.py owns every pause and resume). Admission (step 2) already stops when
        #    the window of uncommitted work (unfinished plus durable work the broker has not
        #    confirmed a commit for) is full: that is what bounds the redo after a crash or a
        #    lost partition. A worker whose commits go unanswered stops taking records and,
        #    once its buffer is full, pauses; it keeps polling, so it stays in the group.
        self.pauses.apply()
        self.hooks.in_flight(self.tracker.outstanding())
        self.hooks.deferred(self.deferrals.counts())
        # 6. Commit the contiguous low-water mark of durable work (THE RULE above): on the
        #    interval, or at once when durable work fills half the window, so a fast engine is
        #    held back by commit round trips, never by the interval.
        if self._commit_due():
            self.commit()
        # 7. The stall watchdog: an owned partition with records waiting and no progress for
        #    worker.stall_timeout_s is reported, whatever the cause (stalls.py).
        self.stalls.check(self.tracker.partitions())

    def serve_outputs(self, timeout: float) -> None:
        """Delivery reports become events; each event completes its ticket or, if fatal, goes
        to the lifecycle: the one way a fatal error reaches the worker's exit."""
        for event in durable_outcomes(self.publisher, self.events, self.life, timeout):
            self.deferrals.finished(event.ticket)
            if self.tracker.complete(event.ticket):
                self.hooks.durable(event.summary)

    # -- step 2 ----------------------------------------------------------------------------
    def _buffer_room(self) -> int:
        """How many records may be taken from the buffer now: the window's room, but its last
        place while records are set aside (deferrals.py, rule 4), and no more than can be
        set aside."""
        room = self.limits.max_in_flight - self.tracker.uncommitted() - self.deferrals.reserve()
        return min(room, self.deferrals.room())

    def _admit(self, message: Any) -> None:
        record = SourceRecord.from_message(message)
        tp = (record.topic, record.partition)
        self.stalls.moved(tp)
        if self.pauses.blocked(tp) or not self.tracker.owns(tp):
            return  # re-delivered after the seek below, or a partition no longer ours
        if self.tracker.already_handed_out(tp, record.offset):
            return  # delivered again after a pause/resume: this record is already in hand
        span = self.hooks.received(record)
        try:
            with self.hooks.stage("decode", span):
                request = self.intake.admit(record)
        except TransientError as exc:
            self.hooks.abandoned(span, exc)
            self.pauses.block(tp, record.offset, exc)
            return
        except Rejected as rejected:
            ticket = self.tracker.hand_out(tp, record.offset)
            self.sink.failed(
                ticket,
                record,
                rejected.error,
                request=rejected.request,
                received_at=time.time(),
                span=span,
            )
            self.hooks.rejected(rejected.request, rejected.error, topic=record.topic)
            return
        if not self.deferrals.defer(record, request, span):
            self._hand_out(record, request, span)

    def _hand_out(self, record: SourceRecord, request: GenerationRequest, span: Any) -> None:
        ticket = self.tracker.hand_out((record.topic, record.partition), record.offset)
        item = WorkItem(ticket, record, request, received_at=time.time(), span=span)
        if self.cancels.cancelled(request.request_id):
            # Cancelled before it arrived: never batched, its result says CANCELLED.
            self.sink.cancelled(item, CancelRequested(request.request_id, stage="intake"))
            return
        self.deferrals.started(ticket, request.tenant)
        self.hooks.admitted(item)
        self.progress.picked_up(request.request_id)
        self.work.put(item)

    def drop_fetched(self, partitions: set[TopicPartitionKey]) -> int:
        """Revoked or lost: forget what was fetched or set aside of ``partitions`` (their next
        owner reads it again from the committed offset, which no record set aside is below)."""
        moved = TransientError(f"{sorted(partitions)} moved away: read again by the next owner")
        for deferred in self.deferrals.drop(partitions):
            self.hooks.abandoned(deferred.span, moved)
        return self.buffer.drop(partitions)

    # -- step 6 ----------------------------------------------------------------------------
    def _commit_due(self) -> bool:
        if time.monotonic() - self._last_commit >= self.limits.commit_interval_s:
            return True
        durable = self.tracker.uncommitted() - self.tracker.outstanding()
        return not self.committer.in_flight and durable * 2 >= self.limits.max_in_flight

    def commit(self) -> None:
        """On the interval: asynchronous, so a slow coordinator never stalls the poll."""
        self._last_commit = time.monotonic()
        self.committer.commit_async(self.consumer)

    def commit_now(self, only: list[TopicPartitionKey] | None = None) -> None:
        """Revoke and shutdown: synchronous, the answer is needed before going on."""
        self._last_commit = time.monotonic()
        self.committer.commit_sync(self.consumer, only)

    # -- shutdown --------------------------------------------------------------------------
    def drain(self) -> bool:
        """Finish in-flight work within the drain timeout; True if everything became durable."""
        self.life.advance(Phase.DRAINING)
        self.pauses.set_paused(True)
        self.work.flush()
        deadline = time.monotonic() + self.limits.drain_timeout_s
        while (
            self.tracker.outstanding()
            and time.monotonic() < deadline
            and not self.life.forced
            and self.life.fatal is None
        ):
            # Keep polling (paused) so the group does not evict us while the GPU finishes.
            consume_promptly(self.consumer, MAX_RECORDS_PER_POLL, POLL_TIMEOUT_S)
            self.serve_outputs(0.0)
        self.close_out(flush_timeout_s=0.5 if self.life.forced else 10.0)
        return self.tracker.outstanding() == 0

    def unfinished(self) -> int:
        """Requests handed out and not yet durable: what a stop now leaves to be redone."""
        return self.tracker.outstanding()

    def close_out(self, *, flush_timeout_s: float) -> None:
        """The one way the worker stops: commit what is durable and nothing else (THE RULE).

        Called after a drain and, without one, after a fatal error (a broken GPU is not
        waited for).
        """
        # 1. Stop generation and the output threads' retries (both read the lifecycle): after
        #    this no new result or dead letter is handed to the producer, so the flush below
        #    sees the last of them. Stores waiting in the output pool are cancelled.
        self.life.advance(Phase.CLOSING)
        self.outputs.shutdown(wait=False, cancel_futures=True)
        # 2. Flush the producer: the results and dead letters it still holds get the broker's
        #    answer now, or stay unacknowledged (their offsets then stay uncommitted).
        self.publisher.flush(flush_timeout_s)
        # 3. Serve outputs: the acknowledgements become completed tickets. Only completed
        #    tickets move the low-water mark, so this must come before the commit.
        self.serve_outputs(0.0)
        # 4. Commit synchronously: the low-water mark covers exactly what is durable, and the
        #    answer is needed before the consumer closes.
        self.commit_now()


def _is_error(message: Any) -> bool:
    """Consumer events that are not records (partition EOF, broker errors): logged, not kept."""
    error = message.error()
    if error is not None:
        log.warning("consumer error: %s", error)
        return True
    return False
