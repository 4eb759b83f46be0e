"""An object store in a local directory, for a single host or where no object store is wanted.

A write is durable once ``put`` returns: the bytes go to a temporary file in the same directory,
which is fsynced, hard-linked to the final name and followed by an fsync of the directory. The
link fails if the name exists, so an object once written is never replaced (the first writer
wins, a race included), and a crash at any instant leaves no object or a whole one. The
directory must be on a file system with hard links (any local POSIX one).

The bytes are the truth: ``stat`` hashes the file itself. What the bytes cannot tell (content
type, image index, caller metadata) is kept in a JSON sidecar under ``.streamgen-meta/``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mimetypes
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from stat import S_ISREG

from streamgen.contracts.result import StoredImage
from streamgen.errors import ConfigError, StoreUnavailable
from streamgen.store.base import ObjectTooLarge
from streamgen.store.uri import check_key, file_uri_path

__all__ = ["FileStore"]

_SIDECARS = ".streamgen-meta"
_NO_OBJECT_ERRNOS = {errno.ELOOP, errno.ENAMETOOLONG}


class FileStore:
    """Objects as files under ``root``; URIs are ``file:///abs/root/key``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()

    def ensure_ready(self, *, create: bool = True) -> None:
        # A local directory is always created: ``create`` guards against a misspelt bucket
        # quietly becoming a new one on a shared endpoint, which a directory cannot be.
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._failure(f"cannot create {self.root}", exc) from exc

    def put(
        self,
        key: str,
        data: bytes,
        *,
        index: int,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> StoredImage:
        path = self._path(key)
        sidecar = {"content_type": content_type, "index": index, "metadata": dict(metadata)}
        try:
            written = _write_once(path, data)
            if written or not self._sidecar(key).exists():
                # The sidecar is not synced: a crash can lose it but never tear it, and losing
                # it loses only extras (see ``metadata``); this halves the fsyncs per image,
                # which bound the file store's throughput (4 -> 2 per put). A put that finds
                # the object without its sidecar (lost in a crash) writes it: same key, same
                # index, content type and metadata.
                _write_atomically(self._sidecar(key), json.dumps(sidecar).encode())
        except OSError as exc:
            raise self._failure(f"cannot write {path}", exc) from exc
        if written:
            return self._describe(key, data, index, content_type)
        kept = self.stat(key)
        if kept is None:  # written by another, then deleted: try again, as for an outage
            raise StoreUnavailable(f"file store {self.root}: {path} vanished")
        return kept

    def get(self, uri: str, *, max_bytes: int | None = None) -> bytes:
        if uri.startswith("s3://"):
            raise ValueError(f"{uri!r}: a file store cannot read s3:// URIs")
        path = file_uri_path(uri) if uri.startswith("file:") else self._path(uri)
        try:
            return _read_regular_file(path, max_bytes)
        except OSError as exc:
            # A path that can never name an object (a symlink loop, a name too long) is as
            # absent as a missing file: retrying it as an outage would stall the worker.
            if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError) or (
                exc.errno in _NO_OBJECT_ERRNOS
            ):
                raise FileNotFoundError(f"no object at {path}") from None
            raise self._failure(f"cannot read {path}", exc) from exc

    def stat(self, key: str) -> StoredImage | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._failure(f"cannot read {path}", exc) from exc
        sidecar = self.metadata(key)
        guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        content_type = str(sidecar.get("content_type") or guessed)
        index = sidecar.get("index", 0)
        return self._describe(key, data, index if isinstance(index, int) else 0, content_type)

    def metadata(self, key: str) -> dict[str, object]:
        """The sidecar of ``key`` (content type, index, caller metadata); {} if there is none."""
        try:
            loaded = json.loads(self._sidecar(key).read_text())
        except (FileNotFoundError, ValueError):
            # A crash between the object and its sidecar leaves no sidecar: the object is
            # still whole, only its extras are missing, and the next put rewrites both.
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _path(self, key: str) -> Path:
        if check_key(key).split("/", 1)[0] == _SIDECARS:
            raise ValueError(f"object key {key!r} is inside the reserved {_SIDECARS}/ directory")
        return self.root / key

    def _sidecar(self, key: str) -> Path:
        return self.root / _SIDECARS / f"{check_key(key)}.json"

    def _describe(self, key: str, data: bytes, index: int, content_type: str) -> StoredImage:
        return StoredImage(
            index=index,
            uri=self._path(key).as_uri(),
            bucket="",
            key=key,
            content_type=content_type,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
        )

    def _failure(self, what: str, exc: OSError) -> Exception:
        # Permissions and a file where the directory should be do not fix themselves: that is
        # a setting to correct, not something to retry.
        if isinstance(exc, PermissionError | NotADirectoryError | FileExistsError):
            return ConfigError("store.url", f"{what}: {exc.strerror}")
        return StoreUnavailable(f"file store {self.root}: {what}: {exc}")


def _read_regular_file(path: Path, max_bytes: int | None) -> bytes:
    # Non-blocking open: a FIFO would otherwise hang the reader; it is no object (below).
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not S_ISREG(info.st_mode):
            raise FileNotFoundError(path)
        if max_bytes is None:
            return handle.read()
        if info.st_size > max_bytes:
            raise ObjectTooLarge(path.as_uri(), max_bytes)
        data = handle.read(max_bytes + 1)  # the file may have grown since fstat
    if len(data) > max_bytes:
        raise ObjectTooLarge(path.as_uri(), max_bytes)
    return data


def _write_once(path: Path, data: bytes) -> bool:
    """Write ``path`` durably unless it exists; False if another writer's file is there.

    The bytes go to a scratch file, fsynced, then hard-linked to the final name: ``link``
    fails if the name exists, so of two writers racing for one key exactly one wins, and a
    reader sees either no file or the whole of the winner's (a rename would replace it).
    """
    with _scratch_file(path, data, durable=True) as scratch:
        try:
            os.link(scratch, path)
        except FileExistsError:
            return False
    _sync_directory(path.parent)
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (not synced): for sidecars, which may be rewritten."""
    with _scratch_file(path, data, durable=False) as scratch:
        scratch.replace(path)


@contextmanager
def _scratch_file(path: Path, data: bytes, *, durable: bool) -> Iterator[Path]:
    """``data`` in a temporary file next to ``path``, removed on exit unless renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    scratch = Path(name)
    try:
        # mkstemp creates the file private (0600); objects are meant to be read by others.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        yield scratch
    finally:
        scratch.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    # A new name is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
