"""``/ready``: whether this worker should count as available (the Kubernetes readiness probe).

Ready means all three:

1. **warmed up**: every ``engine.warmup_shapes`` entry compiled and captured at every batch
   bucket, so the first requests of those shapes run at full speed;
2. **a group member**: the first assignment arrived (possibly of no partitions: a member with
   nothing to do is healthy, and KEDA, not readiness, decides how many there should be);
3. **not stopping**: a draining worker is on its way out.

A rolling update that waits for readiness therefore never counts a compiling worker as
capacity. The HTTP server that answers it is the one serving ``/metrics`` (``Metrics.serve``).
"""

from __future__ import annotations

import threading

__all__ = ["Readiness"]


class Readiness:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warmed_up = False
        self._joined = False
        self._stopping = False

    def warmed_up(self) -> None:
        with self._lock:
            self._warmed_up = True

    def joined(self) -> None:
        with self._lock:
            self._joined = True

    def stopping(self) -> None:
        with self._lock:
            self._stopping = True

    def check(self) -> tuple[bool, str]:
        """(ready, why): the reason is the probe's response body."""
        with self._lock:
            if self._stopping:
                return False, "stopping"
            if not self._warmed_up:
                return False, "warming up"
            if not self._joined:
                return False, "joining the consumer group"
            return True, "ready"
