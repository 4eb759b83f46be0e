"""Reading a request's img2img init image: only under the allowed prefixes, at most N bytes.

Validation already refused every URI outside ``store.init_image_prefixes``; the check runs
again here because the engine can be handed requests that never went through validation. A
file path is also resolved (symlinks, for real) before it is read: a link inside an allowed
directory that leads outside it is refused with the same message as any other outsider, so
the answer never tells whether the object exists.
"""

from __future__ import annotations

import os

from streamgen.errors import InvalidRequest
from streamgen.settings import StoreSettings
from streamgen.store.base import ObjectStore
from streamgen.store.prefixes import AllowedPrefixes, ObjectLocation

__all__ = ["InitImageReader"]


class InitImageReader:
    def __init__(self, store: ObjectStore, prefixes: AllowedPrefixes, *, max_bytes: int) -> None:
        self._store = store
        self._prefixes = prefixes
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(
        cls, settings: StoreSettings, store: ObjectStore, *, max_bytes: int | None = None
    ) -> InitImageReader:
        """Init images (``store.init_image_max_bytes``), or other objects a request names
        under the same prefixes with their own cap (LoRA adapters)."""
        return cls(
            store,
            AllowedPrefixes.from_settings(settings),
            max_bytes=settings.init_image_max_bytes if max_bytes is None else max_bytes,
        )

    def read(self, uri: str) -> bytes:
        """The bytes of the image ``uri`` names.

        Raises :class:`~streamgen.errors.InvalidRequest` when ``uri`` is not allowed (symlinks
        included), ``FileNotFoundError``, :class:`~streamgen.store.base.ObjectTooLarge` past
        ``max_bytes``, :class:`~streamgen.errors.StoreUnavailable` (transient), or whatever
        else the store raises for this one object.
        """
        location = self._prefixes.locate(uri)
        if location.scheme == "file":
            location = self._resolved(uri, location)
        return self._store.get(location.uri, max_bytes=self.max_bytes)

    def canonical(self, uri: str) -> str:
        """The normalised URI of what ``uri`` names, lexically (``uri`` if not allowed)."""
        try:
            return self._prefixes.locate(uri).uri
        except InvalidRequest:
            return uri

    def _resolved(self, uri: str, location: ObjectLocation) -> ObjectLocation:
        # The roots are resolved too (a root may itself be a link, e.g. /data -> /mnt/data),
        # and on every read: a root created after start-up is resolved as it is now.
        # What remains is a race with whoever can swap links inside an allowed directory
        # between this check and the read; such a writer is trusted with that directory.
        real = ObjectLocation.file(os.path.realpath(location.path))
        if not self._prefixes.with_file_roots(os.path.realpath).allows(real):
            raise self._prefixes.refusal(uri)
        return real
