"""Fetching the images of finished requests into a local directory, checked by sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from streamgen.contracts.result import GenerationResult, StoredImage
from streamgen.contracts.validation import REQUEST_ID_PATTERN
from streamgen.errors import StoreUnavailable
from streamgen.store.base import ObjectStore

__all__ = ["DownloadReport", "download_images", "local_name"]

_SUFFIXES = {"image/png": ".png", "image/webp": ".webp", "image/jpeg": ".jpg"}


@dataclass(frozen=True)
class DownloadReport:
    written: list[Path]
    failures: dict[str, str]  # image URI -> why


def local_name(request_id: str, image: StoredImage) -> str:
    """``<request_id>-<index><suffix>``; the suffix from the key, else the content type.

    Raises ValueError for a request id that is unsafe as a file name (only ids that passed
    validation are safe; a ``--no-validate`` submit may have sent others).
    """
    if not REQUEST_ID_PATTERN.fullmatch(request_id) or set(request_id) == {"."}:
        raise ValueError(f"request_id {request_id!r} is not safe as a file name")
    suffix = PurePosixPath(image.key).suffix or _SUFFIXES.get(image.content_type, ".bin")
    if not suffix[1:].isalnum():
        suffix = ".bin"
    return f"{request_id}-{image.index}{suffix}"


def download_images(
    store: ObjectStore, results: Iterable[GenerationResult], directory: Path
) -> DownloadReport:
    """Fetch every image of every SUCCEEDED result; a failure is reported, not raised, so one
    missing object does not cost the others."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    failures: dict[str, str] = {}
    for result in results:
        if result.status != "SUCCEEDED":
            continue
        for image in result.images:
            try:
                path = directory / local_name(result.request_id, image)
                data = store.get(image.uri)
            except (ValueError, FileNotFoundError, StoreUnavailable) as exc:
                failures[image.uri] = f"{type(exc).__name__}: {exc}"
                continue
            digest = hashlib.sha256(data).hexdigest()
            if image.sha256 and digest != image.sha256:
                failures[image.uri] = f"sha256 {digest} does not match the result's {image.sha256}"
                continue
            _write_atomically(path, data)
            written.append(path)
    return DownloadReport(written, failures)


def _write_atomically(path: Path, data: bytes) -> None:
    # A half-written file must never look like a downloaded image.
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)
