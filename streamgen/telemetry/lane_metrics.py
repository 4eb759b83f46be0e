"""Requests per priority lane (``topics.lanes``): ``streamgen_lane_requests_total{lane,outcome}``.

Counted where the worker counts requests (metrics.py): ``consumed`` as a record of the lane's
topic is admitted or rejected at intake, ``succeeded`` / ``failed`` as its result is
acknowledged by the broker. Each lane's lag is ``streamgen_commit_lag_messages`` summed by
``topic`` (a lane is a topic). Declared apart from :class:`~streamgen.telemetry.metrics.Metrics`
(which is at its size bound) but on the same registry, by the worker's hooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

from streamgen.lanes import DEFAULT_LANE

__all__ = ["LaneMetrics", "LaneOutcome"]

LaneOutcome = Literal["consumed", "succeeded", "failed"]
OUTCOMES: tuple[LaneOutcome, ...] = ("consumed", "succeeded", "failed")


class LaneMetrics:
    def __init__(self, registry: CollectorRegistry, lanes: Mapping[str, str] | None = None) -> None:
        """``lanes``: each lane's topic -> the lane's name; a topic not in it counts as the
        default lane (a fleet without lanes, or a test's own topics)."""
        self._lanes = dict(lanes or {})
        self.requests = Counter(
            "streamgen_lane_requests",
            "Requests per priority lane: consumed, then their result acknowledged",
            ("lane", "outcome"),
            registry=registry,
        )
        # Present at 0 so rate() sees a lane's first request.
        self._children = {
            (lane, outcome): self.requests.labels(lane, outcome)
            for lane in {DEFAULT_LANE, *self._lanes.values()}
            for outcome in OUTCOMES
        }

    def lane_of(self, topic: str) -> str:
        return self._lanes.get(topic, DEFAULT_LANE)

    def count(self, topic: str, outcome: LaneOutcome) -> None:
        self._children[(self.lane_of(topic), outcome)].inc()
