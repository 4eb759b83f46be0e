"""Object stores: where images are written and init images read from.

``open_store(settings)`` picks the implementation from ``store.url``: ``file://DIR`` gives a
:class:`FileStore`, ``s3://BUCKET[/PREFIX]`` a :class:`MinioStore` on ``store.endpoint``.
"""

from __future__ import annotations

from streamgen.settings import StoreSettings
from streamgen.store.base import ObjectStore
from streamgen.store.file_store import FileStore
from streamgen.store.minio_store import MinioStore
from streamgen.store.uri import FileLocation, parse_store_url

__all__ = ["FileStore", "MinioStore", "ObjectStore", "open_store"]


def open_store(settings: StoreSettings) -> ObjectStore:
    """The store named by ``settings.url``; a bad URL raises ConfigError naming ``store.url``."""
    location = parse_store_url(settings.url)
    if isinstance(location, FileLocation):
        return FileStore(location.root)
    return MinioStore(
        endpoint=settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        bucket=location.bucket,
        prefix=location.prefix,
        secure=settings.secure,
        region=settings.region,
    )
