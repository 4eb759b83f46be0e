"""An in-memory, read-only ObjectStore for unit tests of code that reads stored images (the
engine's init images, ``submit --download``); the real stores are tested against MinIO."""

from __future__ import annotations

from collections.abc import Mapping

from streamgen.contracts.result import StoredImage
from streamgen.errors import StoreUnavailable
from streamgen.store.base import ObjectTooLarge


class MemoryStore:
    def __init__(self, objects: Mapping[str, bytes], *, down: bool = False) -> None:
        self.objects = dict(objects)
        self.down = down
        self.reads: list[str] = []  # every uri asked for, in order

    def ensure_ready(self) -> None:
        pass

    def put(
        self, key: str, data: bytes, *, index: int, content_type: str, metadata: Mapping[str, str]
    ) -> StoredImage:
        raise NotImplementedError("read-only: the code under test only reads images")

    def get(self, uri: str, *, max_bytes: int | None = None) -> bytes:
        self.reads.append(uri)
        if self.down:
            raise StoreUnavailable("connection refused")
        if uri not in self.objects:
            raise FileNotFoundError(uri)
        if max_bytes is not None and len(self.objects[uri]) > max_bytes:
            raise ObjectTooLarge(uri, max_bytes)
        return self.objects[uri]

    def stat(self, key: str) -> StoredImage | None:
        return None
