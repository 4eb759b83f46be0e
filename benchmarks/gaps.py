"""Where the worker's intake stalls: after each resume, and between admitted records.

The issue's target is "no resume gaps above 50 ms": when the worker resumes its partitions,
records must flow from the broker again at once (librdkafka drops a paused partition's
prefetched records, and re-fetches only after the resume). Two figures are kept:

* the resume gap: from each ``resume()`` to the next ``consume()`` that returns records
  (``benchmarks.worker_run`` wraps the worker's consumer to see both);
* the gaps between consecutive records the loop admits, whatever their cause (a stall after a
  resume, a full window of uncommitted work, a slow poll): their maximum bounds every stall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["IntakeGaps", "percentile"]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class IntakeGaps:
    """Fed monotonic seconds by the hooks (one thread: the consumer loop's)."""

    resume_gaps: list[float] = field(default_factory=list)
    record_gaps: list[float] = field(default_factory=list)
    _last_record: float | None = None
    _resumed_at: float | None = None

    def resumed(self, now: float) -> None:
        if self._resumed_at is None:  # resumed again before records came: the first counts
            self._resumed_at = now

    def fetched(self, now: float) -> None:
        """A poll returned records from the broker."""
        if self._resumed_at is not None:
            self.resume_gaps.append(now - self._resumed_at)
            self._resumed_at = None

    def received(self, now: float) -> None:
        """The loop admitted a record."""
        if self._last_record is not None:
            self.record_gaps.append(now - self._last_record)
        self._last_record = now

    def as_dict(self) -> dict[str, float | int]:
        ms = [1000 * g for g in self.resume_gaps]
        between = [1000 * g for g in self.record_gaps]
        return {
            "resumes": len(ms),
            "resume_gap_ms_p50": round(percentile(ms, 50), 2),
            "resume_gap_ms_p99": round(percentile(ms, 99), 2),
            "resume_gap_ms_max": round(max(ms, default=float("nan")), 2),
            "record_gap_ms_p99": round(percentile(between, 99), 2),
            "record_gap_ms_max": round(max(between, default=float("nan")), 2),
            "record_gaps_over_50ms": sum(1 for g in between if g > 50),
        }
