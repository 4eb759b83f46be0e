"""Dead letters: the original record, unchanged, plus ``streamgen.error.*`` headers.

No schema of its own: a dead letter carries the original key, value bytes and headers, so
``streamgen replay`` is a plain re-publish. The headers added here say why it failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ERROR_PREFIX = "streamgen.error."
REPLAY_PREFIX = "streamgen.replay."

H_STAGE = "streamgen.error.stage"  # decode | validate | generate | store | publish
H_CLASS = "streamgen.error.class"  # Python class name, e.g. InvalidRequest
H_CODE = "streamgen.error.code"  # stable code, e.g. INVALID_REQUEST
H_MESSAGE = "streamgen.error.message"
H_RETRYABLE = "streamgen.error.retryable"  # "true" | "false"
H_ATTEMPTS = "streamgen.error.attempts"
H_REQUEST_ID = "streamgen.error.request_id"  # empty when the record could not be decoded
H_TOPIC = "streamgen.error.original.topic"
H_PARTITION = "streamgen.error.original.partition"
H_OFFSET = "streamgen.error.original.offset"
H_TIMESTAMP = "streamgen.error.original.timestamp"  # ms since epoch
H_GROUP = "streamgen.error.consumer.group"
H_WORKER = "streamgen.error.worker.id"
H_FAILED_AT = "streamgen.error.failed_at"  # ms since epoch

H_REPLAY_COUNT = "streamgen.replay.count"
H_REPLAY_AT = "streamgen.replay.at"
H_REPLAY_SOURCE_OFFSET = "streamgen.replay.source.offset"
H_REPLAY_SOURCE_PARTITION = "streamgen.replay.source.partition"

# Header on a request record: how many times it has already been attempted (retries re-publish
# nothing; this only travels through dead letters and replays).
H_ATTEMPT = "streamgen.attempt"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetterReason:
    """Why one record is being dead-lettered, and where it came from."""

    stage: str
    error_class: str
    code: str
    message: str
    retryable: bool
    attempts: int
    request_id: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    group_id: str
    worker_id: str
    failed_at_ms: int


def dead_letter_headers(
    original: Sequence[tuple[str, bytes]] | None, why: DeadLetterReason
) -> Headers:
    """The original headers (minus any stale ``streamgen.error.*``) followed by ``why``."""
    kept = [(k, v) for k, v in (original or []) if not k.startswith(ERROR_PREFIX)]
    added = {
        H_STAGE: why.stage,
        H_CLASS: why.error_class,
        H_CODE: why.code,
        H_MESSAGE: why.message[:4000],
        H_RETRYABLE: "true" if why.retryable else "false",
        H_ATTEMPTS: str(why.attempts),
        H_REQUEST_ID: why.request_id,
        H_TOPIC: why.topic,
        H_PARTITION: str(why.partition),
        H_OFFSET: str(why.offset),
        H_TIMESTAMP: str(why.timestamp_ms),
        H_GROUP: why.group_id,
        H_WORKER: why.worker_id,
        H_FAILED_AT: str(why.failed_at_ms),
    }
    return kept + [(k, v.encode()) for k, v in added.items()]


def header_map(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as a dict of text (last value wins, as Kafka clients usually read them)."""
    out: dict[str, str] = {}
    for key, value in headers or []:
        out[key] = (value or b"").decode("utf-8", "replace")
    return out
