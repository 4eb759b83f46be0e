"""The worker loop's real event queue, keeping a copy of what was reported for assertions."""

from __future__ import annotations

from streamgen.worker.events import LoopEvents, OutcomeSummary
from streamgen.worker.offsets import Ticket

__all__ = ["RecordedEvents"]


class RecordedEvents(LoopEvents):
    def __init__(self) -> None:
        super().__init__()
        self.durables: list[tuple[Ticket, OutcomeSummary]] = []
        self.fatals: list[BaseException] = []

    def durable(self, ticket: Ticket, summary: OutcomeSummary) -> None:
        self.durables.append((ticket, summary))
        super().durable(ticket, summary)

    def fatal(self, error: BaseException) -> None:
        self.fatals.append(error)
        super().fatal(error)
