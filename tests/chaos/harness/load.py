"""The load generator: publishes requests and remembers exactly those the broker acknowledged.

Only an acknowledged record is owed an outcome (DESIGN invariant 1 starts at "reached the
topic"), so the oracle judges the fleet against this list, never against what was attempted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.settings import Settings

__all__ = ["Acked", "LoadGenerator"]


@dataclass(frozen=True)
class Acked:
    """One record the broker acknowledged, and where it landed."""

    partition: int
    offset: int
    key: bytes | None
    request_id: str | None  # None for raw bytes that carry no request we built


class LoadGenerator:
    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topics.requests
        self._encode = request_codec(settings.kafka, settings.topics.requests).encode
        # Idempotent: a retry across a broker restart must not publish a request twice, or
        # the oracle would count the producer's duplicate against the worker.
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                # Up to the broker's own limit: scenario 10 sends a record just under it.
                "message.max.bytes": 2_000_000,
            }
        )
        self._lock = threading.Lock()
        self._acked: list[Acked] = []
        self.failed: list[str] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Requests handed to the producer by stream(), stream_until_stopped() and burst().
        self.sent = 0

    @property
    def acked(self) -> list[Acked]:
        with self._lock:
            return list(self._acked)

    def send(self, request: GenerationRequest, partition: int | None = None) -> None:
        """Publish ``request`` keyed by its id, to ``partition`` or where the key hashes."""
        key, value = request.request_id.encode(), self._encode(request)
        self.send_raw(key, value, request.request_id, partition)

    def send_raw(
        self,
        key: bytes | None,
        value: bytes | None,
        request_id: str | None,
        partition: int | None = None,
    ) -> None:
        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                with self._lock:
                    self.failed.append(f"{key!r}: {error.str()}")
                return
            acked = Acked(message.partition() or 0, message.offset() or 0, key, request_id)
            with self._lock:
                self._acked.append(acked)

        where = {} if partition is None else {"partition": partition}
        self._producer.produce(self._topic, key=key, value=value, on_delivery=delivered, **where)
        self._producer.poll(0)

    def publish(self, requests: Sequence[GenerationRequest]) -> None:
        for request in requests:
            self.send(request)
        self.flush()

    def flush(self, timeout: float = 120.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise AssertionError(f"{left} requests still unacknowledged after {timeout}s")

    def stream(self, requests: Sequence[GenerationRequest], rate: float) -> None:
        """Publish ``requests`` at ``rate`` per second on a background thread."""

        def run() -> None:
            for request in requests:
                self.send(request)
                self._next()
                time.sleep(1.0 / rate)
            self.flush()

        self._start(run)

    def stream_until_stopped(self, make: Callable[[int], GenerationRequest], rate: float) -> None:
        """Publish ``make(0)``, ``make(1)``, ... at ``rate`` per second until :meth:`stop`.

        For scenarios that wait for a newcomer's first result: a load of fixed length once
        ended before a newcomer had loaded its model on a slow machine, so it had nothing left
        to serve and the scenario failed on the machine's speed, not on the worker."""

        def run() -> None:
            while not self._stop.is_set():
                self.send(make(self._next()))
                self._stop.wait(1.0 / rate)
            self.flush()

        self._start(run)

    def burst(self, make: Callable[[int], GenerationRequest], partitions: int, each: int) -> None:
        """Publish ``each`` requests of ``make`` to every one of partitions 0..``partitions``-1
        at once, acknowledged on return; counted in ``sent`` (the oracle expects them), beside
        a stream that may be running."""
        for partition in range(partitions):
            for _ in range(each):
                self.send(make(self._next()), partition)
        self.flush()

    def _next(self) -> int:
        """The index of the next request sent (``sent`` before it is counted)."""
        with self._lock:
            self.sent += 1
            return self.sent - 1

    def stop(self) -> None:
        """End :meth:`stream_until_stopped`; what it sent is then published and acknowledged."""
        self._stop.set()
        self.wait()

    def _start(self, run: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=run, name="chaos-load", daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 180.0) -> None:
        """Wait for the streamed requests to be published and acknowledged."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise AssertionError(f"load generator still publishing after {timeout}s")
        self.flush()

    def by_position(self) -> dict[tuple[int, int], Acked]:
        return {(a.partition, a.offset): a for a in self.acked}

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._producer.flush(10)
