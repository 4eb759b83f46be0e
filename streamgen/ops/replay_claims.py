"""The record a dead letter stands for, read back from behind its claim check.

A dead letter too large for the topic when it failed carries a claim check
(:mod:`streamgen.contracts.dead_letter`) instead of its bytes: the original value, and the key
and headers when they were too large as well, are objects in the store. Replay reads them back
and checks them against their sha256, so what it re-publishes is exactly what failed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from streamgen.contracts.dead_letter import ClaimedObject, decode_envelope, read_claim_check
from streamgen.errors import StoreUnavailable
from streamgen.settings import StoreSettings
from streamgen.store import ObjectStore, open_store

__all__ = ["ClaimMissing", "ClaimedRecords", "Original"]


class ClaimMissing(Exception):
    """A claim-checked object is gone from the store, or no longer has the bytes it names."""


@dataclass(frozen=True)
class Original:
    """The record a dead letter stands for (headers still with streamgen's own)."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class ClaimedRecords:
    """Follows claim checks into the object store, opened at the first one."""

    def __init__(self, store: StoreSettings) -> None:
        self._settings = store
        self._store: ObjectStore | None = None

    def original(self, message: Any) -> Original:
        """The key, value and headers the dead letter ``message`` stands for. ClaimMissing
        when an object is gone or changed; StoreUnavailable (transient) when it cannot be read."""
        headers = list(message.headers() or [])
        claim = read_claim_check(headers)
        if claim is None:
            return Original(message.key(), message.value(), headers)
        key: bytes | None = message.key()
        if claim.envelope is not None:
            key, kept = decode_envelope(self._fetch(claim.envelope))
            headers = [*kept, *headers]  # the dead letter's own say why it failed
        value = None if claim.value is None else self._fetch(claim.value)
        return Original(key, value, headers)

    def _fetch(self, held: ClaimedObject) -> bytes:
        if self._store is None:
            self._store = open_store(self._settings)
        try:
            data = self._store.get(held.uri)
        except FileNotFoundError:
            raise ClaimMissing(f"object {held.uri} is missing from the object store") from None
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"cannot read the claim-checked {held.uri}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != held.sha256:
            raise ClaimMissing(f"object {held.uri} no longer matches its sha256 {held.sha256}")
        return data
