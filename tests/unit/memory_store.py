"""An in-memory, read-only ObjectStore for unit tests of code that reads stored images (the
engine's init images, ``submit --download``); the real stores are tested against MinIO."""

from __future__ import annotations

from collections.abc import Mapping

from streamgen.contracts.result import StoredImage
from streamgen.errors import StoreUnavailable


class MemoryStore:
    def __init__(self, objects: Mapping[str, bytes], *, down: bool = False) -> None:
        self.objects = dict(objects)
        self.down = down

    def ensure_ready(self, *, create: bool = True) -> None:
        pass

    def put(
        self, key: str, data: bytes, *, index: int, content_type: str, metadata: Mapping[str, str]
    ) -> StoredImage:
        raise NotImplementedError("read-only: the code under test only reads images")

    def get(self, uri: str) -> bytes:
        if self.down:
            raise StoreUnavailable("connection refused")
        if uri not in self.objects:
            raise FileNotFoundError(uri)
        return self.objects[uri]

    def stat(self, key: str) -> StoredImage | None:
        return None
