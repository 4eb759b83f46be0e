"""What ``submit --wait`` shows while it waits: each request's progress events, read from the
progress topic (``topics.progress``) where the workers publish them (``worker.progress``).

Read on a thread of its own with its own consumer, marked at the topic's end before the
requests are published, as the results are (``follow.py``). Advisory like the events: a topic
that cannot be read shows nothing and never fails the submit; the results decide the outcome.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection

from streamgen.contracts.progress import GenerationProgress, progress_codec
from streamgen.errors import BrokerUnavailable
from streamgen.settings import Settings
from streamgen.submit.follow import POLL_SLICE_S, TopicFollower

__all__ = ["ProgressFollower", "ProgressWatch", "describe"]

log = logging.getLogger(__name__)

# A request's STORED event is published just before its result, but by another producer, so it
# may arrive just after it: at the end, this long is given to those still missing.
GRACE_S = 3.0

_STAGES = {"PICKED_UP": "picked up", "BATCH_STARTED": "batch started", "STORED": "stored"}


def describe(event: GenerationProgress) -> str:
    """One line for a person: ``req-1: denoising 12/30 [worker-a]``."""
    what = _STAGES.get(event.stage, event.stage.lower())
    if event.stage == "DENOISING":
        what = f"denoising {event.step}/{event.steps}"
    worker = f" [{event.worker_id}]" if event.worker_id else ""
    return f"{event.request_id}: {what}{worker}"


class ProgressFollower(TopicFollower[GenerationProgress]):
    label = "progress"


class ProgressWatch(threading.Thread):
    def __init__(
        self, follower: ProgressFollower | None, show: Callable[[GenerationProgress], None]
    ) -> None:
        """``follower`` None: ``topics.progress`` is empty, nothing is shown."""
        super().__init__(name="streamgen-submit-progress", daemon=True)
        self._follower = follower
        self._show = show
        self._wanted: frozenset[str] = frozenset()
        self._denoising: set[str] = set()  # seen denoising: a STORED event may still come
        self._stopping = threading.Event()
        self._give_up_at = math.inf

    @classmethod
    def of(cls, settings: Settings, show: Callable[[GenerationProgress], None]) -> ProgressWatch:
        """The watch of ``topics.progress``, showing nothing where that setting is empty."""
        topic = settings.topics.progress
        if not topic:
            return cls(None, show)
        return cls(
            ProgressFollower(settings.kafka, progress_codec(settings.kafka, topic), topic), show
        )

    def start_from_end(self, wanted: Collection[str]) -> None:
        """Mark the topic's end (call it before publishing ``wanted``) and start showing."""
        if self._follower is None:
            return
        try:
            self._follower.mark()
        except BrokerUnavailable as exc:  # no such topic (an older fleet), no read ACL, ...
            log.info("no progress shown: %s", exc)
            return
        self._wanted = frozenset(wanted)
        self.start()

    def run(self) -> None:
        while not self._done():
            assert self._follower is not None  # started only with one
            try:
                event = self._follower.next_record(POLL_SLICE_S)
            except BrokerUnavailable as exc:
                log.info("progress no longer shown: %s", exc)
                return
            if event is not None and event.request_id in self._wanted:
                if event.stage == "DENOISING":
                    self._denoising.add(event.request_id)
                elif event.stage == "STORED":
                    self._denoising.discard(event.request_id)
                self._show(event)

    def _done(self) -> bool:
        if not self._stopping.is_set():
            return False
        return not self._denoising or time.monotonic() > self._give_up_at

    def close(self) -> None:
        """Stop once every request seen denoising showed STORED, or after GRACE_S."""
        self._give_up_at = time.monotonic() + GRACE_S
        self._stopping.set()
        if self.is_alive():
            self.join(GRACE_S + 4 * POLL_SLICE_S)
        if self._follower is not None and not self.is_alive():  # closed once nothing polls it
            self._follower.close()
