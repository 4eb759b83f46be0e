"""The worker's share-group loop (``worker.mode=share``): short on purpose, each step numbered.

A share group (KIP-932) lends each record to one member under a lock the client cannot extend
(``share.record.lock.duration.ms``), and in explicit mode every record a poll returned must be
acknowledged before the next poll. So the loop works in *rounds*: poll, start what the poll
lent as the lock allows (``share_feed.py``), wait until each is durable or given back,
acknowledge, poll again (``share_acks.py`` keeps the books).

THE RULE (DESIGN invariant 2, share-group form): a record is accepted only when its result or
dead letter (or, requeued unstarted, its copy: ``share_requeue.py``) is durable: its ACCEPT is
decided only from the broker's acknowledgement of those, the same durable events the
consumer-group loop completes its tickets with. A record the worker will not finish is
released (handed out again), never rejected: a poison record is dead-lettered first.

The lock is a deadline: a round not all durable by the lock less ``worker.share_lock_margin_s``
has overrun; its unfinished records are released (the GPU thread leaves them), counted, redone
by whichever worker gets them next; a result on its way may be published twice (invariant 3).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import IllegalStateException, KafkaException

from streamgen.contracts.request import GenerationRequest
from streamgen.errors import (
    CancelRequested,
    DeliveryLimitExceeded,
    FatalError,
    InvalidRecord,
    TransientError,
)
from streamgen.telemetry.share_metrics import ShareMetrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.backoff import Backoff
from streamgen.worker.cancels import CancelSet
from streamgen.worker.clients import OutputSender, ShareRequestConsumer
from streamgen.worker.events import LoopEvents, durable_outcomes
from streamgen.worker.intake import Intake, Rejected
from streamgen.worker.lifecycle import Lifecycle, Phase
from streamgen.worker.offsets import Ticket
from streamgen.worker.outputs import OutcomeSink
from streamgen.worker.progress import NO_PROGRESS, ProgressReporter
from streamgen.worker.share_acks import Ack, ShareLedger
from streamgen.worker.share_close import refused_at_close
from streamgen.worker.share_feed import FeedLimits, RoundFeed, deliveries
from streamgen.worker.share_requeue import Unstarted
from streamgen.worker.work_item import SourceRecord, WorkItem
from streamgen.worker.work_queue import WorkQueue

__all__ = ["ShareLimits", "ShareLoop"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.1  # short: an idle loop must also notice a stop
# While a round waits for its outputs, the producer's acknowledgements are what it waits for.
WAIT_TIMEOUT_S = 0.005
# Closing: the broker's answer to the last acknowledgements is needed before the consumer goes.
ACK_COMMIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ShareLimits:
    feed: FeedLimits  # how many records a round has started at once, and its batches' time
    round_s: float  # the lock less worker.share_lock_margin_s: a round's deadline
    delivery_limit: int  # worker.share_delivery_limit


class ShareLoop:
    """Runs on the main thread; owns the share consumer and the ledger of the current round."""

    def __init__(
        self,
        *,
        consumer: ShareRequestConsumer,
        ack_types: dict[Ack, Any],
        publisher: OutputSender,
        ledger: ShareLedger,
        work: WorkQueue,
        intake: Intake,
        cancels: CancelSet,
        sink: OutcomeSink,
        outputs: ThreadPoolExecutor,
        limits: ShareLimits,
        events: LoopEvents,
        lifecycle: Lifecycle,
        decode_backoff: Backoff,
        hooks: WorkerHooks,
        metrics: ShareMetrics,
        unstarted: Unstarted,
        progress: ProgressReporter = NO_PROGRESS,
    ) -> None:
        self.consumer = consumer
        self.ack_types = ack_types  # Ack -> the client's AcknowledgeType
        self.publisher = publisher
        self.ledger = ledger
        self.work = work
        self.intake = intake
        self.cancels = cancels
        self.sink = sink
        self.outputs = outputs
        self.limits = limits
        self.events = events
        self.life = lifecycle
        self.backoff = decode_backoff
        self.hooks = hooks
        self.metrics = metrics
        self.unstarted = unstarted  # requeued (worker.share_requeue) or released
        self.progress = progress
        self._unfinished = 0  # records the last round gave back unfinished

    def run(self) -> None:
        """Until a stop is asked for or a fatal error arrives; a round always ends first."""
        while self.life.serving:
            self.step()

    def step(self) -> None:
        # 1. Poll: allowed only now, with every record of the previous poll acknowledged.
        records = [m for m in self._poll() if not _is_error(m)]
        self.life.joined()  # a poll that answered: the worker is a member (READY)
        self.serve_outputs(0.0)
        if not records:
            return
        self.ledger.new_round()
        deadline = time.monotonic() + self.limits.round_s
        # 2. Keep the poll's records (whole record batches, each lending a delivery): past the
        #    delivery limit → dead-lettered at once (no GPU time; released, the broker could
        #    drop it unseen); the rest wait in the feed, nearest the limit first, but what the
        #    round cannot count on starting is requeued at once (share_requeue.py), for others.
        past = [m for m in records if self._past_limit(m)]
        feed = RoundFeed(
            [m for m in records if not self._past_limit(m)], deliveries, self.limits.feed, deadline
        )
        if self.unstarted.requeue:
            self.unstarted.give_back(feed.beyond(time.monotonic()))
        # 3. Admit what the lock leaves time for: bad → dead letter; the rest go to the GPU
        #    together, batched at once (waiting for a fuller batch gains nothing). A transient
        #    failure (registry away) is retried with backoff until the deadline.
        self._start(past + feed.take(len(past), time.monotonic()), feed, deadline)
        # 4. As records become durable (→ ACCEPT), start more from the feed while a batch
        #    still fits before the deadline; what never could is released, unstarted.
        self._finish_round(deadline, feed)
        # 5. Send the acknowledgements; the next poll is allowed now.
        self._acknowledge()
        self.consumer.commit_async()
        self.hooks.in_flight(0)

    def _poll(self) -> list[Any]:  # the records it lent; a fatal error fails the lifecycle
        try:
            return list(self.consumer.poll(POLL_TIMEOUT_S))
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():  # e.g. share groups turned off under a running worker
                self.life.fail(FatalError(f"share consumer: {error.str()}"))
            else:
                log.warning("share consumer poll failed: %s", error.str())
            return []

    def serve_outputs(self, timeout: float) -> None:
        """Delivery reports: a durable one decides its record's ACCEPT, a fatal one fails."""
        for event in durable_outcomes(self.publisher, self.events, self.life, timeout):
            if self.ledger.complete(event.ticket):
                self.hooks.durable(event.summary)
        if self.unstarted.pump():  # requeued originals' copies durable: ACCEPT them now
            self._acknowledge()
            self.consumer.commit_async()

    # -- step 3 ----------------------------------------------------------------------------
    def _start(self, records: list[Any], feed: RoundFeed[Any], deadline: float) -> None:
        """Admit ``records``; if intake gave up (deadline, stop), the feed's rest goes too."""
        if records and not self._admit_all(records, deadline):
            self.unstarted.give_back(feed.rest())
        self.hooks.in_flight(self.ledger.held())

    def _admit_all(self, records: list[Any], deadline: float) -> bool:
        """Admit in order; a transient failure is retried with backoff (a delivery is precious),
        the work admitted so far already on the GPU. At the deadline or a stop: False."""
        waiting: list[WorkItem] = []
        retry = 0
        for i, message in enumerate(records):
            ticket = self.ledger.hold(message.topic(), message.partition(), message.offset())
            while True:
                try:
                    item = self._admit(message, ticket)
                    break
                except TransientError:
                    delay = self.backoff.delay(retry)
                    retry += 1
                    self.work.put_all(waiting)
                    waiting = []
                    if time.monotonic() + delay >= deadline or not self.life.serving:
                        self.ledger.release((ticket.topic, ticket.partition, ticket.offset))
                        self.unstarted.give_back(records[i + 1 :])
                        return False
                    self._wait(delay)
            if item is not None:
                waiting.append(item)
        self.work.put_all(waiting)
        return True

    def _wait(self, seconds: float) -> None:  # serving outputs: what is on the GPU goes on
        until = time.monotonic() + seconds
        while time.monotonic() < until and not self.life.forced:
            self.serve_outputs(WAIT_TIMEOUT_S)

    def _admit(self, message: Any, ticket: Ticket) -> WorkItem | None:
        """The record's WorkItem, or None when it was dead-lettered (or cancelled) instead;
        TransientError when intake cannot tell yet (the record stays held)."""
        record = SourceRecord.from_message(message)
        span = self.hooks.received(record)
        count = deliveries(message)
        over_limit = self._past_limit(message)
        try:
            with self.hooks.stage("decode", span):
                request = self.intake.admit(record)
        except TransientError as exc:
            if over_limit:  # released again, the broker would drop it unseen at its own limit
                self._over_limit(ticket, record, None, count, span)
                return None
            self.hooks.abandoned(span, exc)
            log.warning("intake of %s@%d waits: %s", record.topic, record.offset, exc)
            raise
        except Rejected as rejected:
            self._dead_letter(ticket, record, rejected.error, rejected.request, 1, span)
            return None
        if over_limit:
            self._over_limit(ticket, record, request, count, span)
            return None
        return self._item(ticket, record, request, span)

    def _past_limit(self, message: Any) -> bool:
        return deliveries(message) > self.limits.delivery_limit

    def _over_limit(
        self,
        ticket: Ticket,
        record: SourceRecord,
        request: GenerationRequest | None,
        n: int,
        span: Any,
    ) -> None:
        """Workers died or overran their locks holding it this often: stop trying."""
        error = DeliveryLimitExceeded(n, self.limits.delivery_limit)
        self._dead_letter(ticket, record, error, request, n, span)
        self.metrics.delivery_limit.inc()

    def _dead_letter(
        self,
        ticket: Ticket,
        record: SourceRecord,
        error: InvalidRecord,
        request: GenerationRequest | None,
        attempt: int,
        span: Any,
    ) -> None:
        """Accepted once durable, like any other outcome: nothing is rejected silently."""
        now = time.time()
        self.sink.failed(
            ticket, record, error, request=request, attempt=attempt, received_at=now, span=span
        )
        self.hooks.rejected(request, error, topic=record.topic)

    def _item(
        self, ticket: Ticket, record: SourceRecord, request: GenerationRequest, span: Any
    ) -> WorkItem | None:
        item = WorkItem(ticket, record, request, received_at=time.time(), span=span)
        if self.cancels.cancelled(request.request_id):
            # Cancelled before it arrived: never batched, its result says CANCELLED.
            self.sink.cancelled(item, CancelRequested(request.request_id, stage="intake"))
            return None
        self.hooks.admitted(item)
        self.progress.picked_up(request.request_id)
        return item

    # -- step 4 ----------------------------------------------------------------------------
    def _finish_round(self, deadline: float, feed: RoundFeed[Any]) -> None:
        while (self.ledger.held() or feed) and not self.life.forced and self.life.fatal is None:
            now = time.monotonic()
            if feed and (not self.life.serving or feed.too_late(now)):
                self.unstarted.give_back(feed.rest())  # a stop, or no batch fits: unstarted
            elif feed:  # started and unfinished: held, less the requeued awaiting their copies
                started = self.ledger.held() - self.unstarted.pending()
                self._start(feed.take(started, now), feed, deadline)
            if now >= deadline:
                self.unstarted.abandon()  # copies not durable in time: released instead
            if now >= deadline and self.ledger.held():
                released = self.ledger.release_all()
                self.metrics.overruns.inc()
                log.warning(
                    "a round overran its lock deadline (%.1f s): %d records released, to be "
                    "redone (worker.share_batch_s may be too small for this model)",
                    self.limits.round_s,
                    released,
                )
                break
            self.serve_outputs(WAIT_TIMEOUT_S)
        # A second stop or a fatal error: what is not durable now is given back at once.
        self.unstarted.abandon(feed.rest())
        self._unfinished = self.ledger.release_all()

    # -- step 5 ----------------------------------------------------------------------------
    def _acknowledge(self) -> None:
        for (topic, partition, offset), ack in self.ledger.take_acks():
            try:
                self.consumer.acknowledge_offset(topic, partition, offset, self.ack_types[ack])
            except (IllegalStateException, KafkaException) as exc:
                # No longer in flight (its lock ended): the broker lends it again; redone.
                self.metrics.ack_failures.inc()
                log.warning("%s of %s/%d@%d refused: %s", ack, topic, partition, offset, exc)
                continue
            self.metrics.acknowledged(ack.value)

    def on_acknowledged(self, offsets: Any, error: Any) -> None:
        """The broker's answer to sent acknowledgements (the client's commit callback)."""
        if error is not None:
            self.metrics.ack_failures.inc()
            log.warning("acknowledgements refused (lock expired?): %s", error)

    # -- shutdown --------------------------------------------------------------------------
    def drain(self) -> bool:
        """The last round ended before ``run`` returned; True if it left nothing unfinished."""
        self.life.advance(Phase.DRAINING)
        self.close_out(flush_timeout_s=0.5 if self.life.forced else 10.0)
        return self._unfinished == 0

    def unfinished(self) -> int:
        return self._unfinished

    def close_out(self, *, flush_timeout_s: float) -> None:
        """The one way the share worker stops: accept what is durable, release the rest."""
        self.life.advance(Phase.CLOSING)  # 1. stops generation and the outputs' retries
        self.outputs.shutdown(wait=False, cancel_futures=True)
        self.publisher.flush(flush_timeout_s)  # 2., and 3.: its acks → ACCEPTs (THE RULE)
        self.serve_outputs(0.0)
        # 4. Give back the rest; wait for the broker's answer (share_close.py: a refusal is
        #    durable work redone elsewhere, not a clean stop) before the consumer closes.
        self._unfinished += self.ledger.release_all()
        self._acknowledge()
        self._unfinished += refused_at_close(self.consumer, self.metrics, ACK_COMMIT_TIMEOUT_S)


def _is_error(message: Any) -> bool:
    if (error := message.error()) is not None:
        log.warning("share consumer error: %s", error)
    return error is not None
