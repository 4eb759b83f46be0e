"""Exponential backoff with full jitter, for transient infrastructure failures."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


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
