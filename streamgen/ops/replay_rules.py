"""Which dead letters ``streamgen replay`` sends back, and how fast (pure, no I/O).

A dead letter is the original record plus ``streamgen.error.*`` headers, or, for a record too
large to dead-letter as it was, a claim check naming where its bytes are kept; both are
written and read in :mod:`streamgen.contracts.dead_letter`, and so are the
``streamgen.replay.*`` provenance headers a replay adds. Here: the filters on what they say,
and the pace.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from streamgen.contracts.dead_letter import (
    DeadLetterReason,
    read_dead_letter_reason,
    replay_count,
)

__all__ = [
    "DeadLetterView",
    "Pacer",
    "ReplayFilter",
    "parse_offset_range",
    "parse_time",
]


@dataclass(frozen=True)
class DeadLetterView:
    """What the filters and the dry-run table need from one dead letter: where it is in the
    dead-letter topic, why it failed (its headers, read by
    :func:`~streamgen.contracts.dead_letter.read_dead_letter_reason`) and its model."""

    dlq_partition: int
    dlq_offset: int
    reason: DeadLetterReason
    replay_count: int
    model: str | None  # None: the value could not be decoded

    @classmethod
    def from_record(
        cls,
        *,
        partition: int,
        offset: int,
        timestamp_ms: int,
        headers: Sequence[tuple[str, bytes | None]] | None,
        model: str | None,
    ) -> DeadLetterView:
        return cls(
            dlq_partition=partition,
            dlq_offset=offset,
            reason=read_dead_letter_reason(headers, record_timestamp_ms=timestamp_ms),
            replay_count=replay_count(headers),
            model=model,
        )


@dataclass(frozen=True)
class ReplayFilter:
    """Every criterion that is set must hold (empty sets and None match everything)."""

    stages: frozenset[str] = frozenset()
    error_classes: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    retryable: bool | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    partitions: frozenset[int] = frozenset()  # original partitions
    offset_range: tuple[int, int] | None = None  # original offsets, inclusive
    models: frozenset[str] = frozenset()
    request_ids: frozenset[str] = frozenset()

    def matches(self, letter: DeadLetterView) -> bool:
        why = letter.reason
        checks = (
            not self.stages or why.stage in self.stages,
            not self.error_classes or why.error_class in self.error_classes,
            not self.codes or why.code in self.codes,
            self.retryable is None or why.retryable == self.retryable,
            self.since_ms is None or why.failed_at_ms >= self.since_ms,
            self.until_ms is None or why.failed_at_ms < self.until_ms,
            not self.partitions or why.partition in self.partitions,
            self.offset_range is None or self.offset_range[0] <= why.offset <= self.offset_range[1],
            not self.models or letter.model in self.models,
            not self.request_ids or why.request_id in self.request_ids,
        )
        return all(checks)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, *, now_ms: int, option: str) -> int:
    """``2h`` / ``30m`` / ``7d`` ago, or an ISO 8601 instant (UTC when no zone is given),
    as ms since the epoch."""
    text = text.strip()
    relative = _DURATION.match(text)
    if relative:
        return now_ms - int(float(relative.group(1)) * _UNIT_S[relative.group(2)] * 1000)
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{option}: {text!r} is neither a duration ago (30m, 2h, 7d) nor an ISO 8601 time "
            "(2026-01-31T12:00:00Z)"
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return int(instant.timestamp() * 1000)


def parse_offset_range(text: str) -> tuple[int, int]:
    """``FIRST-LAST`` (inclusive) or a single offset."""
    first, sep, last = text.partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise ValueError(
            f"--offset-range: expected FIRST-LAST, e.g. 100-250, got {text!r}"
        ) from None
    if low < 0 or high < low:
        raise ValueError(f"--offset-range: need 0 <= FIRST <= LAST, got {text!r}")
    return low, high


class Pacer:
    """At most ``rate`` calls of :meth:`wait` per second (None: no limit)."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"--rate must be > 0, got {rate}")
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = clock()

    def wait(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        if self._next > now:
            self._sleep(self._next - now)
            now = self._next
        # Schedule from the later of plan and now: an idle pause earns no burst afterwards.
        self._next = max(self._next, now) + self._interval
