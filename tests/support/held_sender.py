"""A record sender whose acknowledgements come only when a test says so: for the share-mode
requeue (``worker/share_requeue.py``), whose ordering (a copy durable before its original is
accepted) is what is tested."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from streamgen.errors import FatalError
from streamgen.worker.publisher import OnRejected

__all__ = ["HeldSender", "Sent"]


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    on_ack: Callable[[], None]


@dataclass
class HeldSender:
    """Keeps what was sent; :meth:`acknowledge` plays the broker's acknowledgements."""

    sent: list[Sent] = field(default_factory=list)
    acknowledged: int = 0
    fatal: FatalError | None = None

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        on_ack: Callable[[], None],
        on_rejected: OnRejected | None = None,
    ) -> None:
        self.sent.append(Sent(topic, key, value, list(headers), on_ack))

    def unacknowledged(self) -> int:
        return len(self.sent) - self.acknowledged

    def acknowledge(self) -> int:
        """Acknowledge everything sent so far; how many."""
        pending = self.sent[self.acknowledged :]
        self.acknowledged = len(self.sent)
        for record in pending:
            record.on_ack()
        return len(pending)
