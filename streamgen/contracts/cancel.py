"""A cancel record on the cancels topic (``topics.cancels``): what ``streamgen cancel`` writes
and workers read.

- key: the request id, UTF-8 (the requests topic's key), so compaction keeps one cancel per id;
- value: a small JSON object, ``{"requested_at": "<ISO 8601, with a UTC offset>", "reason":
  "<free text, optional>"}``. JSON, not Avro: the record is tiny, written by operators and
  scripts (``kcat`` can write one by hand) and read only by workers, so a registry and a
  schema file would add a dependency and no safety. Readers ignore fields they do not know;
- a tombstone (no value) withdraws the cancel: compaction then forgets the id too.

Decoding is pure and strict: anything else is a :class:`MalformedCancel` naming what was wrong
(the worker logs it and skips the record; a bad control record must never stop the fleet).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["MAX_REASON_CHARS", "CancelRecord", "MalformedCancel", "decode_cancel", "encode_cancel"]

# The request ids a cancel may name: what producers key requests by (intake's rule too).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# A reason is for people reading logs, not a payload: bounded so a cancel stays small.
MAX_REASON_CHARS = 500


class MalformedCancel(ValueError):
    """A cancel record that cannot be read; the message says what was wrong."""


@dataclass(frozen=True, slots=True)
class CancelRecord:
    request_id: str
    requested_at: datetime  # timezone-aware
    reason: str = ""

    def __post_init__(self) -> None:
        if not _REQUEST_ID.fullmatch(self.request_id):
            raise MalformedCancel(
                f"request id {self.request_id!r} is not 1-128 characters of A-Z a-z 0-9 . _ -"
            )
        if self.requested_at.tzinfo is None:
            raise MalformedCancel("requested_at must carry a UTC offset")
        if len(self.reason) > MAX_REASON_CHARS:
            raise MalformedCancel(f"reason is longer than {MAX_REASON_CHARS} characters")


def encode_cancel(cancel: CancelRecord) -> tuple[bytes, bytes]:
    """(key, value) of the record that cancels ``cancel.request_id``."""
    value = {"requested_at": cancel.requested_at.astimezone(UTC).isoformat()}
    if cancel.reason:
        value["reason"] = cancel.reason
    return cancel.request_id.encode(), json.dumps(value, separators=(",", ":")).encode()


def decode_cancel(key: bytes | None, value: bytes | None) -> CancelRecord | None:
    """The cancel a record states, or None for a tombstone (the cancel of ``key`` withdrawn);
    raises :class:`MalformedCancel` for anything else."""
    request_id = request_id_of(key)
    if value is None:
        return None
    try:
        fields = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedCancel(f"cancel of {request_id!r}: value is not JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise MalformedCancel(f"cancel of {request_id!r}: value is not a JSON object")
    stamp, reason = fields.get("requested_at"), fields.get("reason", "")
    if not isinstance(stamp, str):
        raise MalformedCancel(f"cancel of {request_id!r}: requested_at is missing or not text")
    if not isinstance(reason, str):
        raise MalformedCancel(f"cancel of {request_id!r}: reason is not text")
    try:
        requested_at = datetime.fromisoformat(stamp)
    except ValueError:
        raise MalformedCancel(
            f"cancel of {request_id!r}: requested_at={stamp!r} is not an ISO 8601 time"
        ) from None
    return CancelRecord(request_id, requested_at, reason)


def request_id_of(key: bytes | None) -> str:
    """The request id a cancel record's key names."""
    if key is None:
        raise MalformedCancel("cancel record has no key: expected the request id")
    try:
        request_id = key.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCancel(f"cancel record key {key[:40]!r} is not UTF-8") from None
    if not _REQUEST_ID.fullmatch(request_id):
        raise MalformedCancel(
            f"cancel record key {request_id[:140]!r} is not a request id "
            "(1-128 characters of A-Z a-z 0-9 . _ -)"
        )
    return request_id
