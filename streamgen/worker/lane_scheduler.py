"""Which priority lane is served next: strict priority with a guaranteed minimum share.

Pure logic (no clocks, no Kafka): the batcher asks it which lane a batch is for, counting GPU
cost (pixel-steps); admission from the fetch buffer asks it which lane's record is taken next,
counting records. Lanes are ranks, 0 the highest (settings: ``topics.lanes``).

The rule is deficit round robin for the minimums, strict priority for the rest:

1. Every lane with work waiting at a choice earns ``min_share`` of what is then served,
   whoever gets it; a lane that is served pays what it got. Credit is never below 0 (a lane
   served by priority owes nothing) and a lane with nothing waiting loses its credit (time
   cannot be banked while it had nothing to run).
2. Among the lanes that may be served now (the *candidates*), one whose credit covers the cost
   of its next piece of work is *owed*: the highest owed lane goes first. Otherwise the
   highest candidate goes. (A lane may wait without being a candidate: the fetch buffer's
   lower lanes while the window's reserve is the highest lane's.)

So a lower lane waits behind a higher one only until it has earned one piece of work's worth,
and over any stretch in which a lane stays a candidate it gets at least its minimum share of
what was served, less about one piece of work per lane (tests/unit/worker/test_lane_scheduler.py
states the bound and Hypothesis checks it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

__all__ = ["LaneScheduler"]


class LaneScheduler:
    def __init__(self, min_shares: Sequence[float]) -> None:
        if not min_shares:
            raise ValueError("need at least one lane")
        if any(not 0 < share <= 1 for share in min_shares) or sum(min_shares) > 1 + 1e-9:
            raise ValueError(f"min shares must be in (0, 1] and add up to <= 1, got {min_shares}")
        self._shares = tuple(min_shares)
        self._credit = [0.0] * len(min_shares)

    @property
    def lanes(self) -> int:
        return len(self._shares)

    def choose(self, candidates: Mapping[int, float]) -> int:
        """The lane to serve next among ``candidates`` (rank -> cost of its next work)."""
        if not candidates:
            raise ValueError("no candidate lane")
        owed = [lane for lane, cost in candidates.items() if self._credit[lane] >= cost]
        return min(owed or candidates)

    def charge(self, served: Mapping[int, float], waiting: Collection[int]) -> None:
        """Account what was just served (rank -> cost) among the lanes that had work waiting."""
        total = sum(served.values())
        for lane in range(len(self._shares)):
            if lane not in waiting:
                self._credit[lane] = 0.0
                continue
            earned = self._shares[lane] * total - served.get(lane, 0.0)
            self._credit[lane] = max(0.0, self._credit[lane] + earned)

    def credit(self, lane: int) -> float:
        return self._credit[lane]
