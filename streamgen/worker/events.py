"""What the GPU and output threads tell the consumer loop, on one queue the loop owns.

Two events only: a request's outputs became durable (the broker acknowledged its result or
dead letter), or a fatal error happened off the loop's thread. The loop takes them at every
turn (``ConsumerLoop.serve_outputs``): a durable event completes its ticket, a fatal one goes
to the worker's :class:`~streamgen.worker.lifecycle.Lifecycle`. Nothing else crosses threads
towards the loop, so where a finished request goes is read here, not in the assembly.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from streamgen.errors import FatalError
from streamgen.worker.lifecycle import Lifecycle
from streamgen.worker.offsets import Ticket

__all__ = ["Durable", "Fatal", "LoopEvents", "OutcomeSummary", "durable_outcomes"]


@dataclass(frozen=True, slots=True)
class OutcomeSummary:
    """What became durable for one record: enough for metrics and logs."""

    # SUCCEEDED | FAILED (FAILED with request_id "" is a dead letter alone) | CANCELLED (its
    # result is FAILED with error code CANCELLED)
    status: str
    request_id: str
    model: str
    error_code: str = ""
    stage: str = ""
    dead_lettered: bool = False
    queue_wait_s: float | None = None
    e2e_s: float | None = None
    span: Any = None  # the record's tracing span, ended when the outcome is durable
    topic: str = ""  # the record's: its priority lane (streamgen_lane_requests_total)
    tenant: str = ""  # the request's (streamgen_tenant_requests_total)


@dataclass(frozen=True)
class Durable:
    ticket: Ticket
    summary: OutcomeSummary


@dataclass(frozen=True)
class Fatal:
    error: BaseException


class LoopEvents:
    """Thread-safe: any thread reports, the consumer loop alone takes."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Durable | Fatal] = queue.SimpleQueue()

    def durable(self, ticket: Ticket, summary: OutcomeSummary) -> None:
        self._queue.put(Durable(ticket, summary))

    def fatal(self, error: BaseException) -> None:
        self._queue.put(Fatal(error))

    def take(self) -> Iterator[Durable | Fatal]:
        """Every event reported so far, oldest first (the loop's thread only)."""
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return


class _ServedSender(Protocol):
    fatal: FatalError | None

    def poll(self, timeout: float = 0.0) -> None: ...


def durable_outcomes(
    publisher: _ServedSender, events: LoopEvents, life: Lifecycle, timeout: float
) -> Iterator[Durable]:
    """Serve the producer (its delivery reports become events), then every durable event so
    far; a fatal one, or the producer's, goes to ``life``: the one way a fatal error reaches
    the worker's exit, whichever loop consumes."""
    publisher.poll(timeout)
    if publisher.fatal is not None:
        life.fail(publisher.fatal)
    for event in events.take():
        if isinstance(event, Fatal):
            life.fail(event.error)
        else:
            yield event
