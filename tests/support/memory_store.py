"""An in-memory ObjectStore for unit tests of code that reads stored images (the engine's init
images, ``submit --download``) or writes claim checks; the real stores are tested against
MinIO. Objects are found by their URI (``mem://KEY``) or their bare key."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from streamgen.contracts.result import StoredImage
from streamgen.errors import StoreUnavailable
from streamgen.store.base import ObjectTooLarge


class MemoryStore:
    def __init__(self, objects: Mapping[str, bytes], *, down: bool = False) -> None:
        self.objects = dict(objects)
        self.down = down
        self.puts: list[str] = []  # keys, in the order they were written (first time only)
        self.reads: list[str] = []  # every uri asked for, in order

    def ensure_ready(self, *, create: bool = True) -> None:
        pass

    def put(
        self, key: str, data: bytes, *, index: int, content_type: str, metadata: Mapping[str, str]
    ) -> StoredImage:
        self._check_up()
        uri = f"mem://{key}"
        if uri not in self.objects:  # the first object under a key stays, as in the real stores
            self.objects[uri] = data
            self.puts.append(key)
        return self._describe(key, self.objects[uri], index, content_type)

    def get(self, uri: str, *, max_bytes: int | None = None) -> bytes:
        self.reads.append(uri)
        self._check_up()
        data = self.objects.get(uri, self.objects.get(f"mem://{uri}"))
        if data is None:
            raise FileNotFoundError(uri)
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLarge(uri, max_bytes)
        return data

    def stat(self, key: str) -> StoredImage | None:
        self._check_up()
        data = self.objects.get(f"mem://{key}")
        return None if data is None else self._describe(key, data, 0, "application/octet-stream")

    def _check_up(self) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")

    @staticmethod
    def _describe(key: str, data: bytes, index: int, content_type: str) -> StoredImage:
        sha256 = hashlib.sha256(data).hexdigest()
        return StoredImage(index, f"mem://{key}", "mem", key, content_type, sha256, len(data))
