"""The worker's memory of cancelled request ids: bounded by count and by age.

Fed by the cancel follower (``worker/cancel_follower.py``) from the cancels topic; read by
intake (a cancelled request is not admitted to a batch), by the GPU thread when a batch comes
up and, through the engine's ``cancelled=`` check, between denoising steps. So every read and
change holds one lock; each is a dict operation, far below a denoising step.

Bounds (``worker.cancels_max_ids``, ``worker.cancels_max_age_s``): a cancel older than the age
bound, by its ``requested_at``, is forgotten (it cancels nothing any more: a request still
queued by then is generated), and past the count bound the oldest-learnt cancels are forgotten
first. The age bound should be no shorter than the requests topic's retention, or a cancel may
be forgotten before the request it names is read.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from streamgen.contracts.cancel import MalformedCancel, decode_cancel

__all__ = ["CancelSet"]

log = logging.getLogger(__name__)

Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CancelSet:
    def __init__(
        self,
        *,
        max_ids: int,
        max_age_s: float,
        now: Now = _utc_now,
        on_malformed: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_malformed`` is told of each malformed record skipped (the worker's metric)."""
        if max_ids < 1:
            raise ValueError(f"max_ids must be >= 1, got {max_ids}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self._max_ids = max_ids
        self._max_age = timedelta(seconds=max_age_s)
        self._now = now
        self._lock = threading.Lock()
        # request id -> requested_at, in the order learnt: the first entry is evicted first.
        self._ids: OrderedDict[str, datetime] = OrderedDict()
        self.skipped = 0  # malformed records seen (logged and skipped)
        self._on_malformed = on_malformed

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def cancelled(self, request_id: str) -> bool:
        with self._lock:
            requested_at = self._ids.get(request_id)
            if requested_at is None:
                return False
            if requested_at < self._now() - self._max_age:
                del self._ids[request_id]
                return False
            return True

    def add(self, request_id: str, requested_at: datetime) -> None:
        """Remember a cancel, unless it is already past the age bound."""
        with self._lock:
            oldest = self._now() - self._max_age
            if requested_at < oldest:
                return
            # A second cancel of one id never shortens the memory of the first.
            self._ids[request_id] = max(requested_at, self._ids.pop(request_id, requested_at))
            self._evict(oldest)

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._ids.pop(request_id, None)

    def apply(self, key: bytes | None, value: bytes | None, where: str) -> None:
        """One record of the cancels topic: a cancel, a tombstone (withdrawn), or malformed
        (logged with ``where`` it was read, and skipped: never fatal)."""
        try:
            cancel = decode_cancel(key, value)
        except MalformedCancel as exc:
            self.skipped += 1
            log.warning("skipped a malformed cancel record at %s: %s", where, exc)
            self._on_malformed()
            return
        if cancel is None:
            assert key is not None  # decode_cancel refuses a tombstone without a key
            self.forget(key.decode())
        else:
            self.add(cancel.request_id, cancel.requested_at)

    def _evict(self, oldest: datetime) -> None:
        """Over the count bound: drop the oldest-learnt, expired or not; then, while the first
        entries are past the age bound, drop them too (cheap: no full scan)."""
        while len(self._ids) > self._max_ids:
            self._ids.popitem(last=False)
        while self._ids:
            first = next(iter(self._ids.values()))
            if first >= oldest:
                return
            self._ids.popitem(last=False)
