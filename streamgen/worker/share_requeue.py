"""Share mode: what a round does with records it will not start: *requeue* them, or release
them (``worker.share_requeue``).

The broker lends whole record batches, and a release costs the record a delivery and hands the
rest of its batch back to one member again: a backlog published in large producer batches
stayed with one member at a time, and a batch larger than a member can start in
``worker.share_delivery_limit`` locks reached the limit on its tail, unstarted (issue 27).

A requeue instead produces a copy of the record (same key, value and headers, plus the
``streamgen.requeue.*`` headers below) to the record's own topic (its lane), ``chunk`` copies
per producer batch (``share_startup.requeue_chunk``; the next chunk is sent once the previous
one is acknowledged),
so that any member can take them, and ACCEPTs the original only once the broker has
acknowledged its copy; the loop sends those ACCEPTs at once, not at the end of the round. A
copy starts again at delivery 1. A round requeues, at its start, what it cannot count on
starting (``RoundFeed.beyond``: past the window and the batches that fit in the lock), and
later what the lock left no time for, or a stop. What is not durable by the round's deadline
(or at a second stop) is released instead: nothing is lost.

At least once: a crash between a copy's acknowledgement and the broker's receipt of its
original's ACCEPT leaves both, one request served twice (the same request id and object keys:
DESIGN invariant 3); at most the chunks whose ACCEPTs were still on their way (one chunk, two
when the next chunk's copies land before the previous ACCEPTs reach the broker). So does a copy
acknowledged after its original was released at the deadline (at most the chunk in flight).
A round's window is ``worker.max_in_flight`` less two chunks, so that this and the redo of
started work together stay within ``worker.max_in_flight`` (DESIGN invariant 8).

Records already started are never requeued: they keep the release path and its delivery
count, so a record that kills workers is still dead-lettered ``DELIVERY_LIMIT_EXCEEDED``.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from streamgen.telemetry.share_metrics import ShareMetrics
from streamgen.worker.offsets import Ticket
from streamgen.worker.outputs import RecordSender
from streamgen.worker.share_acks import ShareLedger

__all__ = [
    "H_REQUEUE_COUNT",
    "H_REQUEUE_OFFSET",
    "H_REQUEUE_PARTITION",
    "H_REQUEUE_TOPIC",
    "Unstarted",
    "requeue_headers",
]

REQUEUE_PREFIX = "streamgen.requeue."
H_REQUEUE_COUNT = "streamgen.requeue.count"  # how many times this request was requeued
H_REQUEUE_TOPIC = "streamgen.requeue.source.topic"  # where the record copied was
H_REQUEUE_PARTITION = "streamgen.requeue.source.partition"
H_REQUEUE_OFFSET = "streamgen.requeue.source.offset"


def requeue_headers(message: Any) -> list[tuple[str, bytes]]:
    """The original's headers, its stale ``streamgen.requeue.*`` ones replaced by where it
    was and one more requeue."""
    own = [(k, v if isinstance(v, bytes) else b"") for k, v in (message.headers() or [])]
    count = next((_int(v) for k, v in own if k == H_REQUEUE_COUNT), 0)
    return [
        *((k, v) for k, v in own if not k.startswith(REQUEUE_PREFIX)),
        (H_REQUEUE_COUNT, str(count + 1).encode()),
        (H_REQUEUE_TOPIC, message.topic().encode()),
        (H_REQUEUE_PARTITION, str(message.partition()).encode()),
        (H_REQUEUE_OFFSET, str(message.offset()).encode()),
    ]


class Unstarted:
    """Owned by the loop's thread; the producer's acknowledgements (any thread) are handed
    over through a queue and turned into ACCEPTs by :meth:`pump`."""

    def __init__(
        self,
        *,
        ledger: ShareLedger,
        sender: RecordSender,
        metrics: ShareMetrics,
        chunk: int,
        requeue: bool,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"a requeue chunk needs at least one record: {chunk}")
        self.ledger = ledger
        self.sender = sender
        self.metrics = metrics
        self.chunk = chunk
        self.requeue = requeue  # worker.share_requeue
        self._waiting: deque[tuple[Any, Ticket]] = deque()  # held, copy not sent yet
        self._sent: set[Ticket] = set()  # held, copy sent and not acknowledged yet
        self._durable: deque[Ticket] = deque()  # copies acknowledged (any thread appends)
        self._lock = threading.Lock()

    def give_back(self, messages: Sequence[Any]) -> None:
        """Records a round will not start: requeued (if on), else released at once."""
        if not self.requeue:
            self.release(messages)
            return
        for message in messages:
            ticket = self.ledger.hold(message.topic(), message.partition(), message.offset())
            self._waiting.append((message, ticket))
        self.pump()

    def release(self, messages: Iterable[Any]) -> None:
        """RELEASE unstarted records: each costs one delivery (counted)."""
        n = 0
        for message in messages:
            key = (message.topic(), message.partition(), message.offset())
            self.ledger.hold(*key)
            self.ledger.release(key)
            n += 1
        self.metrics.excess.inc(n)

    def pump(self) -> int:
        """ACCEPT the originals whose copies are durable (how many: the loop sends these at
        once, so that a crash duplicates few); send the next chunk when the last one is all
        acknowledged (a chunk is its own producer batch)."""
        with self._lock:
            durable, self._durable = list(self._durable), deque()
        accepted = 0
        for ticket in durable:
            self._sent.discard(ticket)
            if self.ledger.complete(ticket):
                self.metrics.requeued.inc()
                accepted += 1
        if self._sent or not self._waiting:
            return accepted
        for _ in range(min(self.chunk, len(self._waiting))):
            message, ticket = self._waiting.popleft()
            self._sent.add(ticket)
            self.sender.send(
                message.topic(),
                message.key(),
                message.value(),
                requeue_headers(message),
                on_ack=functools.partial(self._acknowledged, ticket),
            )
        return accepted

    def _acknowledged(self, ticket: Ticket) -> None:
        with self._lock:
            self._durable.append(ticket)

    def pending(self) -> int:
        """Records held for a requeue whose copy is not durable yet."""
        return len(self._waiting) + len(self._sent)

    def abandon(self, unsent: Iterable[Any] = ()) -> int:
        """The deadline or a second stop: RELEASE what is not durable yet (a copy on its way
        may still land: that request is then served twice), and ``unsent`` records too. How
        many were released."""
        self.release(unsent)
        tickets = [ticket for _, ticket in self._waiting] + list(self._sent)
        self._waiting.clear()
        self._sent.clear()
        for ticket in tickets:
            if self.ledger.is_current(ticket):
                self.ledger.release((ticket.topic, ticket.partition, ticket.offset))
        self.metrics.excess.inc(len(tickets))
        return len(tickets)


def _int(value: bytes) -> int:
    try:
        return int(value.decode())
    except (UnicodeDecodeError, ValueError):
        return 0
