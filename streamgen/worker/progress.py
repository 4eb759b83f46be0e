"""Progress notes (``worker.progress``): what the consumer and GPU threads hand the progress
publisher, and which denoising steps are worth a note.

The threads that report are the ones whose time is the fleet's throughput, so reporting is a
tuple put on a bounded queue and nothing else: no encoding, no Kafka, no lock held while
waiting. A full queue drops the note and counts it (progress is advisory; a lost note is not
a lost request). The publisher thread (``progress_publisher.py``) turns notes into events.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from streamgen.contracts.progress import ProgressStage
from streamgen.engine.types import StepObserver
from streamgen.telemetry.progress_metrics import DropReason

__all__ = ["NO_PROGRESS", "ProgressNote", "ProgressReporter", "StepCadence"]

# Notes waiting for the publisher. A note is ~200 bytes; 10,000 is ~2 MB, minutes of a full
# batch's notes at the default cadence: only a publisher that is stuck fills it.
QUEUE_NOTES = 10_000


class ProgressNote(NamedTuple):
    """One stage reached by one or more requests (a batch's requests share their steps)."""

    stage: ProgressStage
    request_ids: Sequence[str]
    at: float  # wall clock, seconds
    step: int = 0
    steps: int = 0


@dataclass(slots=True)
class StepCadence:
    """Which denoising steps of one engine call are reported: the first step, the last, and
    between them a step only once ``interval_s`` has passed since the last one reported.

    Time, not a step count: a step takes 5 ms (a small batch under CUDA graphs) to seconds (a
    large FLUX batch, a CPU), so every N steps would flood the topic or fall silent; a time
    bounds the events per request at ~1/interval_s whatever the model, which is what bounds
    their cost, and is what a person watching wants. 0 reports every step.
    """

    interval_s: float
    _last: float = -math.inf

    def due(self, step: int, steps: int, now: float) -> bool:
        if step <= 1 or step >= steps or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False


class ProgressReporter:
    """Thread-safe and never blocking. ``notes`` None: progress is off and every call returns
    at once (``step_observer`` gives None, so the engine does no work for it either)."""

    def __init__(
        self,
        notes: queue.Queue[ProgressNote] | None,
        *,
        interval_s: float = 1.0,
        on_dropped: Callable[[DropReason], None] = lambda reason: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._notes = notes
        self._interval_s = interval_s
        self._on_dropped = on_dropped
        self._clock = clock

    @property
    def on(self) -> bool:
        return self._notes is not None

    def picked_up(self, request_id: str) -> None:
        if self._notes is not None:
            self._put(ProgressNote("PICKED_UP", (request_id,), self._clock()))

    def batch_started(self, request_ids: Sequence[str]) -> None:
        if self._notes is not None:
            self._put(ProgressNote("BATCH_STARTED", tuple(request_ids), self._clock()))

    def stored(self, request_id: str) -> None:
        if self._notes is not None:
            self._put(ProgressNote("STORED", (request_id,), self._clock()))

    def step_observer(self) -> StepObserver | None:
        """The engine's ``on_step`` for one engine call, with its own cadence; None when off."""
        if self._notes is None:
            return None
        cadence = StepCadence(self._interval_s)

        def stepped(request_ids: Sequence[str], step: int, steps: int) -> None:
            now = self._clock()
            if cadence.due(step, steps, now):
                self._put(ProgressNote("DENOISING", request_ids, now, step, steps))

        return stepped

    def _put(self, note: ProgressNote) -> None:
        assert self._notes is not None
        try:
            self._notes.put_nowait(note)
        except queue.Full:
            for _ in note.request_ids:
                self._on_dropped("queue_full")


NO_PROGRESS = ProgressReporter(None)
