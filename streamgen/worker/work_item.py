"""The unit of work that travels from the consumer through the GPU to the outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamgen.contracts.request import GenerationRequest
from streamgen.worker.offsets import Ticket

__all__ = ["SourceRecord", "WorkItem"]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The consumed record exactly as it arrived: a dead letter re-publishes these bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @classmethod
    def from_message(cls, message: Any) -> SourceRecord:
        _, timestamp = message.timestamp()
        headers = tuple((k, v if v is not None else b"") for k, v in message.headers() or ())
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value(),
            headers=headers,
            timestamp_ms=max(int(timestamp), 0),
        )


@dataclass(slots=True)
class WorkItem:
    """One admitted request, from poll to durable outputs. ``attempt`` counts generations."""

    ticket: Ticket
    record: SourceRecord
    request: GenerationRequest
    received_at: float  # wall clock, seconds
    attempt: int = 1
    span: Any = field(default=None, repr=False)  # the record's tracing span (or None)
