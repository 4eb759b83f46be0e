"""Dead letters and claim checks: every ``streamgen.*`` header is written and read here.

No schema of its own: a dead letter carries the original key, value bytes and headers, so
``streamgen replay`` is a plain re-publish. The headers added here say why it failed.

A record too large to publish as it is (a dead letter of a huge record, a result with huge
metadata) goes out in a form that fits, its bytes kept in the object store: a *claim check*.
``streamgen.claim.value.{uri,size,sha256}`` name the object holding the original value; when
the key and headers were too large to keep inline as well, ``streamgen.claim.envelope.*`` name
an object holding them (:func:`encode_envelope`), and the record carries neither.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from streamgen.contracts.result import GenerationResult

ERROR_PREFIX = "streamgen.error."
REPLAY_PREFIX = "streamgen.replay."

H_STAGE = "streamgen.error.stage"  # consume | decode | validate | generate | store | publish
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

CLAIM_PREFIX = "streamgen.claim."
H_CLAIM_VALUE_URI = "streamgen.claim.value.uri"
H_CLAIM_VALUE_SIZE = "streamgen.claim.value.size"  # bytes
H_CLAIM_VALUE_SHA256 = "streamgen.claim.value.sha256"  # hex
H_CLAIM_ENVELOPE_URI = "streamgen.claim.envelope.uri"
H_CLAIM_ENVELOPE_SIZE = "streamgen.claim.envelope.size"
H_CLAIM_ENVELOPE_SHA256 = "streamgen.claim.envelope.sha256"

# A claim-checked record keeps its key and headers inline up to this many bytes. With the
# error headers (message capped at 4000 characters) and the claim headers it stays far below
# any broker's limit, whatever the original size.
INLINE_BUDGET_BYTES = 16 * 1024
# What a claim-checked record can weigh at most (key + headers, value empty), with room to
# spare for librdkafka's per-record overhead; the start-up size check warns below this.
CLAIM_CHECKED_MAX_BYTES = 64 * 1024
_MESSAGE_CHARS = 4000
# A claim-checked result keeps its texts up to this many characters (the full ones are in
# the claim-checked object).
_RESULT_TEXT_CHARS = 1000

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
    """The original headers (minus any stale ``streamgen.error.*`` or ``streamgen.claim.*``)
    followed by ``why``."""
    kept = original_headers(original)
    added = {
        H_STAGE: why.stage,
        H_CLASS: why.error_class,
        H_CODE: why.code,
        H_MESSAGE: why.message[:_MESSAGE_CHARS],
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


def read_dead_letter_reason(
    headers: Sequence[tuple[str, bytes | None]] | None, *, record_timestamp_ms: int
) -> DeadLetterReason:
    """What :func:`dead_letter_headers` wrote, read back. A header that is missing or not a
    number reads as empty, 0 (attempts) or -1 (a position), and ``failed_at_ms`` falls back to
    the dead letter's own timestamp: a dead letter of an older worker still reads."""
    h = header_map(headers)
    return DeadLetterReason(
        stage=h.get(H_STAGE, ""),
        error_class=h.get(H_CLASS, ""),
        code=h.get(H_CODE, ""),
        message=h.get(H_MESSAGE, ""),
        retryable=h.get(H_RETRYABLE, "") == "true",
        attempts=_int(h.get(H_ATTEMPTS, ""), 0),
        request_id=h.get(H_REQUEST_ID, ""),
        topic=h.get(H_TOPIC, ""),
        partition=_int(h.get(H_PARTITION, ""), -1),
        offset=_int(h.get(H_OFFSET, ""), -1),
        timestamp_ms=_int(h.get(H_TIMESTAMP, ""), -1),
        group_id=h.get(H_GROUP, ""),
        worker_id=h.get(H_WORKER, ""),
        failed_at_ms=_int(h.get(H_FAILED_AT, ""), record_timestamp_ms),
    )


def replay_count(headers: Sequence[tuple[str, bytes | None]] | None) -> int:
    """How many times the record has been replayed (0 if never)."""
    return _int(header_map(headers).get(H_REPLAY_COUNT, ""), 0)


def replay_headers(
    original: Sequence[tuple[str, bytes | None]] | None,
    *,
    source: tuple[int, int],
    attempts: int,
    now_ms: int,
) -> Headers:
    """A dead letter's own headers, minus ``streamgen.error.*``, ``streamgen.claim.*`` and stale
    replay provenance, plus this replay's provenance: the count, when, ``source`` (its partition
    and offset in the dead-letter topic) and the attempt count the worker continues from."""
    kept = [
        (k, v)
        for k, v in original_headers(original)
        if not k.startswith(REPLAY_PREFIX) and k != H_ATTEMPT
    ]
    added = {
        H_REPLAY_COUNT: str(replay_count(original) + 1),
        H_REPLAY_AT: str(now_ms),
        H_REPLAY_SOURCE_PARTITION: str(source[0]),
        H_REPLAY_SOURCE_OFFSET: str(source[1]),
        H_ATTEMPT: str(attempts),
    }
    return kept + [(k, v.encode()) for k, v in added.items()]


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def header_map(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as a dict of text (last value wins, as Kafka clients usually read them)."""
    out: dict[str, str] = {}
    for key, value in headers or []:
        out[key] = (value or b"").decode("utf-8", "replace")
    return out


def record_bytes(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> int:
    """The payload bytes of a record: key, value, header names and values (no framing)."""
    names_and_values = sum(len(k.encode()) + len(v or b"") for k, v in headers)
    return len(key or b"") + len(value or b"") + names_and_values


# -- claim checks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedObject:
    """Bytes kept in the object store in place of a record's: where, how many, which."""

    uri: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    value: ClaimedObject | None  # None: the record had no value (a tombstone)
    envelope: ClaimedObject | None  # the key and headers, when too large to keep inline


def keeps_inline(key: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> bool:
    """Can a claim-checked record still carry this key and these headers as they are?"""
    return record_bytes(key, None, headers) <= INLINE_BUDGET_BYTES


def claim_check_headers(claim: ClaimCheck) -> Headers:
    out: Headers = []
    for (uri, size, sha256), held in (
        ((H_CLAIM_VALUE_URI, H_CLAIM_VALUE_SIZE, H_CLAIM_VALUE_SHA256), claim.value),
        ((H_CLAIM_ENVELOPE_URI, H_CLAIM_ENVELOPE_SIZE, H_CLAIM_ENVELOPE_SHA256), claim.envelope),
    ):
        if held is not None:
            out += [(uri, held.uri.encode()), (size, str(held.size).encode())]
            out.append((sha256, held.sha256.encode()))
    return out


def read_claim_check(headers: Sequence[tuple[str, bytes | None]] | None) -> ClaimCheck | None:
    """The claim check a record carries, or None for a record that carries its own bytes."""
    h = header_map(headers)

    def held(uri: str, size: str, sha256: str) -> ClaimedObject | None:
        if uri not in h:
            return None
        return ClaimedObject(uri=h[uri], size=int(h.get(size) or -1), sha256=h.get(sha256, ""))

    value = held(H_CLAIM_VALUE_URI, H_CLAIM_VALUE_SIZE, H_CLAIM_VALUE_SHA256)
    envelope = held(H_CLAIM_ENVELOPE_URI, H_CLAIM_ENVELOPE_SIZE, H_CLAIM_ENVELOPE_SHA256)
    if value is None and envelope is None:
        return None
    return ClaimCheck(value=value, envelope=envelope)


def claim_checked_dead_letter(
    key: bytes | None,
    original: Sequence[tuple[str, bytes]] | None,
    why: DeadLetterReason,
    claim: ClaimCheck,
) -> tuple[bytes | None, bytes, Headers]:
    """The dead letter that fits: (key, empty value, headers), the rest behind ``claim``.

    With an envelope the key and original headers are in it and the record carries neither
    (but for a small ``streamgen.replay.*`` provenance); without one they are kept as they are.
    """
    if claim.envelope is not None:
        # Replay provenance stays readable (``--max-replays`` counts on it) if it is small.
        provenance = [(k, v) for k, v in original or () if k.startswith(REPLAY_PREFIX)]
        key, original = None, provenance if keeps_inline(None, provenance) else []
    return key, b"", dead_letter_headers(original, why) + claim_check_headers(claim)


def claim_checked_result(result: GenerationResult, full: ClaimedObject) -> GenerationResult:
    """The result that fits: ``full`` names the object holding the whole encoded result.

    Every field stays as it was except the unbounded ones: ``metadata`` is replaced by the
    claim check's ``streamgen.claim.value.*`` entries, and the texts a request can make
    arbitrarily long (request id, model, error message) are clipped.
    """

    def clip(text: str) -> str:
        return text if len(text) <= _RESULT_TEXT_CHARS else text[: _RESULT_TEXT_CHARS - 3] + "..."

    error = result.error
    if error is not None:
        error = dataclasses.replace(
            error, code=clip(error.code), message=clip(error.message), stage=clip(error.stage)
        )
    return dataclasses.replace(
        result,
        request_id=clip(result.request_id),
        model=clip(result.model),
        error=error,
        metadata=header_map(claim_check_headers(ClaimCheck(value=full, envelope=None))),
    )


def encode_envelope(key: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    """A record's key and headers as JSON (bytes in base64): the claim-checked envelope."""

    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode()

    document = {"key": b64(key), "headers": [[k, b64(v)] for k, v in headers]}
    return json.dumps(document, separators=(",", ":")).encode()


def decode_envelope(data: bytes) -> tuple[bytes | None, Headers]:
    document = json.loads(data)

    def raw(text: str | None) -> bytes | None:
        return None if text is None else base64.b64decode(text)

    headers = [(str(k), raw(v) or b"") for k, v in document["headers"]]
    return raw(document["key"]), headers


def original_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> Headers:
    """A dead letter's headers without what streamgen added (``streamgen.error.*`` and
    ``streamgen.claim.*``): the record's own headers as they were."""
    return [
        (k, v or b"")
        for k, v in headers or ()
        if not k.startswith(ERROR_PREFIX) and not k.startswith(CLAIM_PREFIX)
    ]
