"""Claim checks: a dead letter or result the broker refused as too large (or invalid) goes out
in a form that fits, its bytes kept in the object store (DESIGN invariant 6).

Runs on the output pool, never on the consumer thread where the broker's refusal is reported
(delivery callbacks run inside ``poll``): the store write retries with backoff for as long as
the store is down, like an image write. The ticket becomes durable only when the broker
acknowledges the record that fits: it is produced with the original record's ``on_ack``.

Object keys derive from what is claim-checked, so a redo finds the same keys, where the store
keeps the first object written (DESIGN invariant 3): a dead letter's from its source record,
``dead-letters/{topic}/{partition}/{offset}/value`` (and ``…/envelope.json`` for a key and
headers too large to keep inline); a result's from its request, ``{request_id}/result.avro``,
next to its images.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from streamgen.contracts.dead_letter import (
    ClaimCheck,
    ClaimedObject,
    DeadLetterReason,
    claim_check_headers,
    claim_checked_dead_letter,
    claim_checked_result,
    encode_envelope,
    keeps_inline,
)
from streamgen.contracts.result import GenerationResult
from streamgen.contracts.validation import REQUEST_ID_PATTERN
from streamgen.errors import StoreUnavailable
from streamgen.store.base import ObjectStore
from streamgen.worker.events import LoopEvents
from streamgen.worker.publisher import OnAck
from streamgen.worker.storage import StoreRetry
from streamgen.worker.work_item import SourceRecord

__all__ = ["ClaimChecker", "DeadLetterKeys", "dead_letter_keys", "result_key"]

log = logging.getLogger(__name__)

Send = Callable[[str, bytes | None, bytes | None, Sequence[tuple[str, bytes]], OnAck], None]
EncodeResult = Callable[[GenerationResult], bytes]


@dataclass(frozen=True, slots=True)
class DeadLetterKeys:
    value: str
    envelope: str


def dead_letter_keys(record: SourceRecord) -> DeadLetterKeys:
    """Where a dead letter's bytes go: one place per source record, whoever dead-letters it."""
    base = f"dead-letters/{record.topic}/{record.partition}/{record.offset}"
    return DeadLetterKeys(value=f"{base}/value", envelope=f"{base}/envelope.json")


def result_key(request_id: str) -> str:
    """Where a request's full result goes: next to its images. An id that is not a valid key
    (the result of an invalid request) is replaced by its digest."""
    if REQUEST_ID_PATTERN.fullmatch(request_id) and set(request_id) != {"."}:
        return f"{request_id}/result.avro"
    return f"invalid-request-ids/{hashlib.sha256(request_id.encode()).hexdigest()}/result.avro"


@dataclass
class ClaimChecker:
    store: ObjectStore
    retry: StoreRetry
    send: Send  # produce without a fallback: the form sent here always fits
    encode_result: EncodeResult
    pool: Executor
    events: LoopEvents  # a failure past retrying is fatal, reported to the consumer loop

    def dead_letter(
        self, topic: str, record: SourceRecord, why: DeadLetterReason, on_ack: OnAck, refusal: str
    ) -> None:
        what = f"the dead letter of {record.topic}[{record.partition}]@{record.offset}"
        log.warning("%s was refused (%s); claim-checking its bytes", what, refusal)
        self._submit(what, self._dead_letter, topic, record, why, on_ack)

    def result(
        self,
        topic: str,
        result: GenerationResult,
        encoded: bytes,
        headers: Sequence[tuple[str, bytes]],
        on_ack: OnAck,
        refusal: str,
    ) -> None:
        what = f"the result of {result.request_id[:128]}"
        log.warning("%s was refused (%s); claim-checking it", what, refusal)
        self._submit(what, self._result, topic, result, encoded, headers, on_ack)

    # -- on the output pool ----------------------------------------------------------------
    def _dead_letter(
        self, topic: str, record: SourceRecord, why: DeadLetterReason, on_ack: OnAck
    ) -> None:
        keys = dead_letter_keys(record)
        source = f"{record.topic}/{record.partition}/{record.offset}"
        value = None
        if record.value is not None:
            value = self._keep(keys.value, record.value, "application/octet-stream", source)
        envelope = None
        if not keeps_inline(record.key, record.headers):
            data = encode_envelope(record.key, record.headers)
            envelope = self._keep(keys.envelope, data, "application/json", source)
        claim = ClaimCheck(value=value, envelope=envelope)
        key, empty, headers = claim_checked_dead_letter(record.key, record.headers, why, claim)
        self.send(topic, key, empty, headers, on_ack)

    def _result(
        self,
        topic: str,
        result: GenerationResult,
        encoded: bytes,
        headers: Sequence[tuple[str, bytes]],
        on_ack: OnAck,
    ) -> None:
        full = self._keep(
            result_key(result.request_id), encoded, "application/avro", result.request_id[:128]
        )
        fits = claim_checked_result(result, full)
        claim = claim_check_headers(ClaimCheck(value=full, envelope=None))
        self.send(
            topic, fits.request_id.encode(), self.encode_result(fits), [*headers, *claim], on_ack
        )

    def _keep(self, key: str, data: bytes, content_type: str, source: str) -> ClaimedObject:
        # The store keeps the first object under a key: on a redo (a result's bytes differ,
        # it carries timings) the claim names that object with its own checksum, which the
        # first event already carries, so every event's claim stays true.
        def put() -> ClaimedObject:
            kept = self.store.put(
                key, data, index=0, content_type=content_type, metadata={"source": source}
            )
            return ClaimedObject(uri=kept.uri, size=kept.size_bytes, sha256=kept.sha256)

        return self.retry.call(key, put)

    def _submit(self, what: str, task: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                task(*args)
            except StoreUnavailable:
                # Only raised once the worker is stopping: the record stays uncommitted and
                # is dead-lettered again after the restart.
                log.warning("abandoned claim-checking %s: worker stopping", what)
            except BaseException as exc:
                log.exception("claim-checking %s failed", what)
                self.events.fatal(exc)

        try:
            self.pool.submit(run)
        except RuntimeError:
            # The pool is shut down: the worker is stopping and this record is redone.
            log.warning("abandoned claim-checking %s: worker stopping", what)
