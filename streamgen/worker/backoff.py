"""Exponential backoff with full jitter, for transient infrastructure failures."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamgen.errors import FatalError

__all__ = ["Backoff", "TransientRetries"]


@dataclass(slots=True)
class Backoff:
    """Delay before retry ``n`` (0-based): uniform in [0, min(max, initial * 2**n)].

    Full jitter spreads the retries of a whole fleet after a shared outage (the object store
    coming back would otherwise be hit by every worker in the same millisecond).
    """

    initial_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {self.initial_s}, {self.max_s}")

    def ceiling(self, attempt: int) -> float:
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # Cap the exponent: 2**1100 overflows a float long before max_s matters.
        return min(self.max_s, self.initial_s * 2.0 ** min(attempt, 60))

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, self.ceiling(attempt))


@dataclass(slots=True)
class TransientRetries:
    """The retries of one piece of work that fails transiently (store down, …).

    ``next_delay`` says how long to wait before the next attempt, and raises
    :class:`~streamgen.errors.FatalError` once ``budget_s`` (0: never) has passed since the
    first failure: an outage that long needs a restart or an operator, not more waiting.
    """

    backoff: Backoff
    budget_s: float = 0.0
    clock: Callable[[], float] = time.monotonic
    attempt: int = 0
    first_failure: float | None = None

    def next_delay(self, what: str, error: Exception) -> float:
        now = self.clock()
        if self.first_failure is None:
            self.first_failure = now
        waited = now - self.first_failure
        if self.budget_s and waited > self.budget_s:
            raise FatalError(
                f"{what} unavailable for {waited:.0f}s (budget {self.budget_s:.0f}s): {error}"
            ) from error
        delay = self.backoff.delay(self.attempt)
        self.attempt += 1
        return delay
