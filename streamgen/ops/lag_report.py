"""What ``streamgen lag`` reports, computed from numbers read off the broker (pure, no I/O).

Per partition: the group's committed offset, the log end, the lag in messages, how long the
oldest unprocessed message has waited, and which member owns it. For the group: totals, plus
the backlog in GPU-seconds (each unprocessed request weighted by its pixel-steps, over the
throughput measured from recent results) and the time to drain it at the current rate.
:mod:`streamgen.ops.lag_probe` does the reading.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streamgen.ops.text_table import text_table
from streamgen.telemetry.backlog import BacklogEstimate, backlog_estimate

__all__ = [
    "GroupLag",
    "PartitionLag",
    "committed_rate",
    "format_duration",
    "render_table",
    "results_rate",
]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    log_start: int
    log_end: int
    owner: str = ""  # "client-id@host" of the member that owns it, "" when unassigned
    oldest_timestamp_ms: int | None = None  # record at the first unprocessed offset
    sampled: int = 0  # unprocessed requests decoded for the backlog estimate
    sampled_pixel_steps: float = 0.0  # their total pixel-steps

    @property
    def position(self) -> int:
        """The first offset the group will process next. Without a commit the worker starts at
        the log start (auto.offset.reset=earliest); a commit below the log start (retention
        deleted those records) also resumes there."""
        return max(self.committed if self.committed is not None else self.log_start, self.log_start)

    @property
    def lag(self) -> int:
        return max(self.log_end - self.position, 0)

    def lag_seconds(self, now_ms: int) -> float | None:
        if self.lag == 0 or self.oldest_timestamp_ms is None:
            return None if self.lag else 0.0
        return max(now_ms - self.oldest_timestamp_ms, 0) / 1000

    @property
    def pixel_steps_estimate(self) -> float | None:
        """Sampled mean cost x lag; None when lag > 0 but nothing could be sampled."""
        if self.lag == 0:
            return 0.0
        if self.sampled == 0:
            return None
        return self.sampled_pixel_steps / self.sampled * self.lag


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    taken_at_ms: int
    partitions: tuple[PartitionLag, ...]
    throughput: float | None = None  # pixel-steps per GPU-second from recent results
    drain_rate: float | None = None  # messages per second the group consumes now
    drain_rate_source: str = ""  # "committed offsets" | "results" | ""

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def max_lag_seconds(self) -> float | None:
        ages = [p.lag_seconds(self.taken_at_ms) for p in self.partitions]
        known = [a for a in ages if a is not None]
        return max(known) if known else None

    @property
    def backlog(self) -> BacklogEstimate:
        estimates = [p.pixel_steps_estimate for p in self.partitions]
        # A partition with lag that could not be sampled makes the total unknowable; say so
        # (throughput None) rather than under-reporting.
        unknown = any(e is None for e in estimates)
        work = sum(e for e in estimates if e is not None)
        return backlog_estimate(
            messages=self.total_lag,
            pixel_steps_total=work,
            throughput=None if unknown else self.throughput,
            drain_rate=self.drain_rate,
        )

    def to_json(self) -> dict[str, Any]:
        backlog = self.backlog
        return {
            "group": self.group,
            "topic": self.topic,
            "taken_at_ms": self.taken_at_ms,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed": p.committed,
                    "log_start": p.log_start,
                    "log_end": p.log_end,
                    "lag": p.lag,
                    "lag_seconds": p.lag_seconds(self.taken_at_ms),
                    "owner": p.owner,
                    "sampled": p.sampled,
                }
                for p in self.partitions
            ],
            "total_lag": self.total_lag,
            "max_lag_seconds": self.max_lag_seconds,
            "backlog_pixel_steps": backlog.pixel_steps,
            "throughput_pixel_steps_per_gpu_second": backlog.throughput,
            "backlog_gpu_seconds": backlog.gpu_seconds,
            "drain_rate_per_second": backlog.drain_rate,
            "drain_rate_source": self.drain_rate_source,
            # JSON has no infinity: a group that consumes nothing reports null and stalled=true.
            "drain_seconds": _finite(backlog.drain_seconds),
            "stalled": backlog.drain_seconds == math.inf,
        }


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


def results_rate(finished_ms: Iterable[int], now_ms: int, window_s: float = 60.0) -> float:
    """Results per second over the last ``window_s``: how fast the group is draining now.

    Counted from the oldest result inside the window up to now, so an idle fleet's rate
    decays to zero instead of echoing its last burst.
    """
    recent = [t for t in finished_ms if 0 <= now_ms - t <= window_s * 1000]
    if not recent:
        return 0.0
    span_s = max((now_ms - min(recent)) / 1000, 1.0)
    return len(recent) / span_s


def committed_rate(before: GroupLag, after: GroupLag) -> float | None:
    """Messages per second committed between two snapshots of the same group."""
    seconds = (after.taken_at_ms - before.taken_at_ms) / 1000
    if seconds <= 0:
        return None
    earlier = {(p.topic, p.partition): p.position for p in before.partitions}
    moved = sum(
        max(p.position - earlier[(p.topic, p.partition)], 0)
        for p in after.partitions
        if (p.topic, p.partition) in earlier
    )
    return moved / seconds


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "never (not consuming)"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def render_table(report: GroupLag) -> str:
    """The human-readable report, shaped like ``kafka-consumer-groups --describe``."""
    header = ("TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "OLDEST-WAITING", "OWNER")
    rows: list[Sequence[str]] = [header]
    for p in sorted(report.partitions, key=lambda p: (p.topic, p.partition)):
        rows.append(
            (
                p.topic,
                str(p.partition),
                "-" if p.committed is None else str(p.committed),
                str(p.log_end),
                str(p.lag),
                format_duration(p.lag_seconds(report.taken_at_ms)),
                p.owner or "-",
            )
        )
    lines = [text_table(rows)]
    backlog = report.backlog
    rate = (
        f"{backlog.drain_rate:.2f} msg/s ({report.drain_rate_source})"
        if backlog.drain_rate is not None
        else "-"
    )
    lines += [
        "",
        f"group {report.group} on {report.topic}: total lag {report.total_lag} messages, "
        f"oldest waiting {format_duration(report.max_lag_seconds)}",
        f"backlog: {_gpu_seconds_text(report, backlog)}",
        f"drain: {format_duration(backlog.drain_seconds)} at {rate}",
    ]
    return "\n".join(lines)


def _gpu_seconds_text(report: GroupLag, backlog: BacklogEstimate) -> str:
    if backlog.gpu_seconds is not None:
        return (
            f"{backlog.gpu_seconds:.1f} GPU-seconds "
            f"({backlog.pixel_steps:.3g} pixel-steps at {backlog.throughput:.3g} per GPU-second)"
        )
    if backlog.messages == 0:
        return "0 GPU-seconds"
    if report.throughput is None:
        return "unknown GPU-seconds (no recent SUCCEEDED results to measure throughput)"
    return "unknown GPU-seconds (unprocessed requests could not be read for sampling)"
