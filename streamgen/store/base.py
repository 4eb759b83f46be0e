"""The object-store interface: where images are written and init images are read from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from streamgen.contracts.result import StoredImage

__all__ = ["ObjectStore"]


class ObjectStore(Protocol):
    """A place to put images under deterministic keys (re-processing overwrites, never forks).

    Implementations raise :class:`streamgen.errors.StoreUnavailable` for anything that may
    succeed on a retry (connection refused, timeouts, 5xx), and ``FileNotFoundError`` from
    :meth:`get` for a key that does not exist.
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
        """Store ``data`` durably under ``key`` and describe it (uri, sha256, size)."""
        ...

    def get(self, uri: str) -> bytes:
        """Read an object by the URI this store hands out (or a bare key)."""
        ...

    def stat(self, key: str) -> StoredImage | None:
        """Describe an existing object (sha256 from its metadata), or None if absent."""
        ...
