"""Which dead letters ``streamgen replay`` sends back, and with which headers (pure, no I/O).

A dead letter is the original record plus ``streamgen.error.*`` headers
(:mod:`streamgen.contracts.dead_letter`), or, for a record too large to dead-letter as it was,
a claim check naming where its bytes are kept. Replaying it re-publishes the original key,
value and headers without the error and claim headers, plus ``streamgen.replay.*``
provenance: how many times it has been replayed, when, and where in the dead-letter topic it
came from.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from streamgen.contracts.dead_letter import (
    H_ATTEMPT,
    H_ATTEMPTS,
    H_CLASS,
    H_CODE,
    H_FAILED_AT,
    H_MESSAGE,
    H_OFFSET,
    H_PARTITION,
    H_REPLAY_AT,
    H_REPLAY_COUNT,
    H_REPLAY_SOURCE_OFFSET,
    H_REPLAY_SOURCE_PARTITION,
    H_REQUEST_ID,
    H_RETRYABLE,
    H_STAGE,
    H_TOPIC,
    REPLAY_PREFIX,
    header_map,
    original_headers,
)

__all__ = [
    "DeadLetterView",
    "Pacer",
    "ReplayFilter",
    "parse_offset_range",
    "parse_time",
    "replay_headers",
]

Headers = list[tuple[str, bytes]]


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


@dataclass(frozen=True)
class DeadLetterView:
    """What the filters and the dry-run table need from one dead letter."""

    dlq_partition: int
    dlq_offset: int
    request_id: str
    stage: str
    error_class: str
    code: str
    message: str
    retryable: bool
    attempts: int
    original_topic: str
    original_partition: int
    original_offset: int
    failed_at_ms: int
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
        h = header_map(headers)
        return cls(
            dlq_partition=partition,
            dlq_offset=offset,
            request_id=h.get(H_REQUEST_ID, ""),
            stage=h.get(H_STAGE, ""),
            error_class=h.get(H_CLASS, ""),
            code=h.get(H_CODE, ""),
            message=h.get(H_MESSAGE, ""),
            retryable=h.get(H_RETRYABLE, "") == "true",
            attempts=_int(h.get(H_ATTEMPTS, ""), 0),
            original_topic=h.get(H_TOPIC, ""),
            original_partition=_int(h.get(H_PARTITION, ""), -1),
            original_offset=_int(h.get(H_OFFSET, ""), -1),
            failed_at_ms=_int(h.get(H_FAILED_AT, ""), timestamp_ms),
            replay_count=_int(h.get(H_REPLAY_COUNT, ""), 0),
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
        checks = (
            not self.stages or letter.stage in self.stages,
            not self.error_classes or letter.error_class in self.error_classes,
            not self.codes or letter.code in self.codes,
            self.retryable is None or letter.retryable == self.retryable,
            self.since_ms is None or letter.failed_at_ms >= self.since_ms,
            self.until_ms is None or letter.failed_at_ms < self.until_ms,
            not self.partitions or letter.original_partition in self.partitions,
            self.offset_range is None
            or self.offset_range[0] <= letter.original_offset <= self.offset_range[1],
            not self.models or letter.model in self.models,
            not self.request_ids or letter.request_id in self.request_ids,
        )
        return all(checks)


def replay_headers(
    original: Sequence[tuple[str, bytes | None]] | None, letter: DeadLetterView, now_ms: int
) -> Headers:
    """The record's own headers, minus ``streamgen.error.*``, ``streamgen.claim.*`` and stale
    replay provenance, plus this replay's provenance and the attempt count the worker
    continues from."""
    kept = [
        (k, v)
        for k, v in original_headers(original)
        if not k.startswith(REPLAY_PREFIX) and k != H_ATTEMPT
    ]
    added = {
        H_REPLAY_COUNT: str(letter.replay_count + 1),
        H_REPLAY_AT: str(now_ms),
        H_REPLAY_SOURCE_PARTITION: str(letter.dlq_partition),
        H_REPLAY_SOURCE_OFFSET: str(letter.dlq_offset),
        H_ATTEMPT: str(letter.attempts),
    }
    return kept + [(k, v.encode()) for k, v in added.items()]


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
