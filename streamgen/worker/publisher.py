"""Producing result events and dead letters, and knowing when the broker has them.

Idempotent producer (``enable.idempotence``, ``acks=all``): librdkafka retries inside
``message.timeout.ms`` without duplicates or reordering. A delivery that still fails (broker
down for longer) is produced again after a backoff, for ever or until the retry budget runs
out — a result is never given up on, because its offset must not be committed without it.

A record the broker will never accept as it is (too large, invalid: see
:mod:`streamgen.worker.produce_errors`) is handed to the sender's ``on_rejected`` instead,
which publishes a form of it that fits (:mod:`streamgen.worker.claim_check`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from streamgen.errors import BrokerUnavailable, FatalError
from streamgen.worker.backoff import Backoff
from streamgen.worker.produce_errors import ProduceFailure, classify_produce_error

__all__ = ["OnRejected", "Publisher"]

log = logging.getLogger(__name__)

OnAck = Callable[[], None]
OnRetry = Callable[[str], None]
# Called with the broker's reason instead of retrying a record it will never accept; it runs
# on whichever thread found out (the consumer thread, for delivery reports): hand over, never
# block.
OnRejected = Callable[[str], None]

# A delivery is retried by librdkafka for this long before we see a failure and back off;
# shorter than max.poll.interval.ms so a broker outage surfaces in logs and metrics quickly.
MESSAGE_TIMEOUT_MS = 30_000


@dataclass(slots=True)
class _Record:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    on_ack: OnAck
    on_rejected: OnRejected | None = None
    attempt: int = 0
    first_failure: float = 0.0


@dataclass(order=True, slots=True)
class _Retry:
    due: float
    seq: int
    record: _Record = field(compare=False)


class Publisher:
    """Thread-safe: any thread may ``send``; the consumer thread calls ``poll``."""

    def __init__(
        self,
        client_config: Mapping[str, str],
        *,
        backoff: Backoff,
        retry_budget_s: float = 0.0,
        on_retry: OnRetry | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "compression.type": "lz4",
            **client_config,
        }
        self._producer = Producer(config)
        self._backoff = backoff
        self._budget_s = retry_budget_s
        self._on_retry = on_retry
        self._retries: list[_Retry] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.fatal: FatalError | None = None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight + len(self._retries)

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        on_ack: OnAck,
        on_rejected: OnRejected | None = None,
    ) -> None:
        """Produce; ``on_ack`` runs (in the polling thread) once the broker has the record.

        ``on_rejected`` runs instead if the record can never be accepted as it is; without one
        such a record is retried like a transient failure (and logged as an error).
        """
        self._produce(_Record(topic, key, value, headers, on_ack, on_rejected))

    def _produce(self, record: _Record) -> None:
        def delivered(err: KafkaError | None, _msg: Any) -> None:
            with self._lock:
                self._in_flight -= 1
            if err is None:
                record.on_ack()
            else:
                self._failed(err, record)

        with self._lock:
            self._in_flight += 1
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=delivered,
                )
                return
            except BufferError:
                # Local queue full: serve delivery reports to make room, then try again.
                self._producer.poll(0.05)
            except KafkaException as exc:
                # Refused before it left (e.g. larger than message.max.bytes): the same
                # decision as for a failed delivery report.
                with self._lock:
                    self._in_flight -= 1
                self._failed(exc.args[0], record)
                return

    def _failed(self, err: KafkaError, record: _Record) -> None:
        now = time.monotonic()
        record.first_failure = record.first_failure or now
        failure = classify_produce_error(err)
        if failure is ProduceFailure.FATAL:
            self.fatal = FatalError(f"producer fatal error on {record.topic}: {err}")
            return
        if failure is ProduceFailure.REJECTED:
            if record.on_rejected is not None:
                log.warning(
                    "%s refused a record (%s); publishing a form that fits", record.topic, err
                )
                record.on_rejected(err.str())
                return
            log.error(
                "%s refused a record that has no smaller form (%s); retrying: check the "
                "topic's max.message.bytes and the producer's message.max.bytes",
                record.topic,
                err,
            )
        waited = now - record.first_failure
        if self._budget_s and waited > self._budget_s:
            self.fatal = _budget_exhausted(record.topic, err, waited)
            return
        delay = self._backoff.delay(record.attempt)
        log.warning("delivery to %s failed (%s); retry in %.2fs", record.topic, err, delay)
        if self._on_retry:
            self._on_retry(record.topic)
        record.attempt += 1
        with self._lock:
            heapq.heappush(self._retries, _Retry(now + delay, next(self._seq), record))

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports and re-produce the retries that are due."""
        self._producer.poll(timeout)
        now = time.monotonic()
        due: list[_Retry] = []
        with self._lock:
            while self._retries and self._retries[0].due <= now:
                due.append(heapq.heappop(self._retries))
        for retry in due:
            self._produce(retry.record)

    def flush(self, timeout: float) -> int:
        """Deliver everything within ``timeout`` seconds; return how many are still pending."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            self.poll(min(0.1, max(0.0, deadline - time.monotonic())))
        return self.in_flight


def _budget_exhausted(topic: str, err: KafkaError, waited: float) -> FatalError:
    """The retry budget for the broker ran out: exit and let a restart (or an operator) fix it."""
    cause = BrokerUnavailable(f"delivery to {topic} failing for {waited:.0f}s: {err}")
    fatal = FatalError(f"retry budget exhausted: {cause}")
    fatal.__cause__ = cause
    return fatal
