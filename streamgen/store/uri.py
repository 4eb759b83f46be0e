"""Store URLs, object URIs and keys: parsing and checking, no I/O.

A store is configured by ``file://DIR`` or ``s3://BUCKET[/PREFIX]``; it hands out
``file:///abs/path`` and ``s3://bucket/key`` URIs; callers may also pass bare keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from streamgen.errors import ConfigError

__all__ = [
    "FileLocation",
    "S3Location",
    "check_key",
    "file_uri_path",
    "parse_store_url",
    "split_s3_uri",
]

# S3 bucket naming rules (lowercase, digits, dots and dashes, 3-63 characters).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class FileLocation:
    root: Path


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "some/prefix" without a trailing slash


def parse_store_url(url: str, *, setting: str = "store.url") -> FileLocation | S3Location:
    """Parse a store root (``store.url`` or ``setting``); a bad one raises ConfigError naming it."""
    if url.startswith("file://"):
        raw = unquote(url.removeprefix("file://"))
        if not raw:
            raise ConfigError(setting, f"{url!r}: file:// needs a directory")
        return FileLocation(Path(raw))
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        check_bucket(bucket, setting=setting)
        prefix = prefix.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except ValueError as exc:
                raise ConfigError(setting, f"{url!r}: prefix {exc}") from None
        return S3Location(bucket, prefix)
    raise ConfigError(setting, f"{url!r}: expected file://DIR or s3://BUCKET[/PREFIX]")


def check_bucket(bucket: str, *, setting: str) -> None:
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(
            setting,
            f"bucket {bucket!r} is not a valid S3 bucket name "
            "(3-63 characters: lowercase letters, digits, dots and dashes)",
        )


def check_key(key: str) -> str:
    """Reject keys that could escape the store's root or collide after normalisation."""
    if not key:
        raise ValueError("object key must not be empty")
    if key.startswith("/") or "\\" in key or "\0" in key:
        raise ValueError(f"object key {key!r} must be relative and use '/' separators")
    if any(part in {"", ".", ".."} for part in key.split("/")):
        raise ValueError(f"object key {key!r} has an empty, '.' or '..' segment")
    if len(key.encode()) > 1024:
        raise ValueError(f"object key {key[:40]!r}… is longer than 1024 bytes")
    return key


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ValueError(f"{uri!r}: expected s3://BUCKET/KEY")
    return bucket, check_key(key)


def file_uri_path(uri: str) -> Path:
    """``file:///abs/path`` (percent-encoded as ``Path.as_uri`` writes it) -> the path."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in {"", "localhost"}:
        raise ValueError(f"{uri!r} is not a local file:// URI")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ValueError(f"{uri!r}: expected an absolute path (file:///...)")
    return path
