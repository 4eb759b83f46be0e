"""A thread-safe view of which partition generations this worker owns right now.

The OffsetTracker belongs to the consumer thread; the GPU and output threads consult this view
to drop work of partitions that moved away (no output, no commit: the new owner redoes it).
"""

from __future__ import annotations

import threading

from streamgen.worker.offsets import Ticket, TopicPartitionKey

__all__ = ["Ownership"]


class Ownership:
    def __init__(self) -> None:
        self._generations: dict[TopicPartitionKey, int] = {}
        self._lock = threading.Lock()

    def grant(self, tp: TopicPartitionKey, generation: int) -> None:
        with self._lock:
            self._generations[tp] = generation

    def withdraw(self, tp: TopicPartitionKey) -> None:
        with self._lock:
            self._generations.pop(tp, None)

    def is_current(self, ticket: Ticket) -> bool:
        with self._lock:
            return self._generations.get(ticket.tp) == ticket.generation
