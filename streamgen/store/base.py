"""The object-store interface: where images are written and init images are read from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from streamgen.contracts.result import StoredImage

__all__ = ["ObjectStore", "ObjectTooLarge"]


class ObjectTooLarge(Exception):
    """An object is larger than the reader's limit; nothing past the limit was read."""

    def __init__(self, uri: str, limit: int) -> None:
        super().__init__(f"{uri}: larger than {limit} bytes")
        self.limit = limit


class ObjectStore(Protocol):
    """A place to put images under deterministic keys, each written once (DESIGN invariant 3).

    An object that an event names must keep the bytes whose sha256 the event carries, so
    :meth:`put` keeps the first object written under a key: a redo, or a second worker racing
    the first, gets the stored object's description back instead of replacing it.

    Implementations raise :class:`streamgen.errors.StoreUnavailable` for anything that may
    succeed on a retry (connection refused, timeouts, 5xx), and ``FileNotFoundError`` from
    :meth:`get` for a key that does not exist (or is no regular object: a directory, a FIFO).
    """

    def ensure_ready(self, *, create: bool = True) -> None:
        """Check the bucket / directory exists, creating it if missing and ``create``.

        Raises StoreUnavailable if unreachable, ConfigError naming the setting if the
        credentials are refused or the bucket is missing and may not be created.
        """

    def put(
        self,
        key: str,
        data: bytes,
        *,
        index: int,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> StoredImage:
        """Store ``data`` durably under ``key`` unless an object is there already, and describe
        the object that is there now (uri, sha256, size): ours, or the first writer's.

        Race-safe: of two writers of one key, exactly one writes and both get its description.
        """
        ...

    def get(self, uri: str, *, max_bytes: int | None = None) -> bytes:
        """Read an object by the URI this store hands out (or a bare key).

        With ``max_bytes``, a larger object raises :class:`ObjectTooLarge` after reading at
        most ``max_bytes + 1`` bytes of it.
        """
        ...

    def stat(self, key: str) -> StoredImage | None:
        """Describe an existing object (sha256 from its metadata), or None if absent."""
        ...
