"""Progress events (``worker.progress``): ``streamgen_progress_events_published_total`` and
``streamgen_progress_events_dropped_total{reason}``.

Progress is advisory, so a dropped event is counted here and nowhere else: it never fails a
request or stops the worker. Declared apart from :class:`~streamgen.telemetry.metrics.Metrics`
(at its size bound) on the same registry, and only by a worker with progress on.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter

__all__ = ["REASONS", "DropReason", "ProgressMetrics"]

# queue_full: the publisher thread fell behind the worker's notes; producer_full: librdkafka's
# own queue is full (the broker is slow or away); broker: delivery failed within its timeout;
# error: an event could not be encoded or produced; unsent: still queued when the worker stopped.
DropReason = Literal["queue_full", "producer_full", "broker", "error", "unsent"]
REASONS: tuple[DropReason, ...] = ("queue_full", "producer_full", "broker", "error", "unsent")


class ProgressMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "streamgen_progress_events_published",
            "Progress events the broker acknowledged",
            registry=registry,
        )
        self._dropped = Counter(
            "streamgen_progress_events_dropped",
            "Progress events given up on (advisory: the request goes on)",
            ("reason",),
            registry=registry,
        )
        # Present at 0 so an alert on rate() sees the first drop.
        self._reasons = {reason: self._dropped.labels(reason) for reason in REASONS}

    def event_published(self) -> None:
        self.published.inc()

    def event_dropped(self, reason: DropReason) -> None:
        self._reasons[reason].inc()
