"""Where a request may point its img2img init image: an allow-list of store prefixes. No I/O.

``store.init_image_prefixes`` lists roots (``s3://BUCKET[/PREFIX]`` or ``file://DIR``); empty
means the worker's own store root (``store.url``). A request's ``init_image_uri`` is allowed
only if, once normalised, it names an object strictly under one of them:

- normalised lexically: percent-encoding decoded once, ``.`` and empty segments dropped,
  ``..`` applied (climbing above a bucket or ``/`` is refused, not clamped);
- matched on whole segments: ``s3://b/imgs`` allows ``s3://b/imgs/x`` but not
  ``s3://b/imgs-secret/x``;
- refused with one message whatever the object (missing, present, unreadable), so the
  refusal is no oracle for what exists outside the roots.

A file path can still lead elsewhere through a symlink; only a read can tell, so that check
lives next to the read (:mod:`streamgen.store.init_images`), reusing
:meth:`AllowedPrefixes.allows`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import quote, unquote

from streamgen.contracts.validation import clip
from streamgen.errors import ConfigError, InvalidRequest
from streamgen.settings import StoreSettings
from streamgen.store.uri import FileLocation, check_key, parse_store_url

__all__ = ["AllowedPrefixes", "ObjectLocation", "parse_object_uri"]

SETTING = "store.init_image_prefixes"

Scheme = Literal["s3", "file"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# Control characters never belong in a key or a path (NUL truncates paths in C); a backslash
# is a separator to some S3 gateways and tools, so it is refused rather than guessed about.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class ObjectLocation:
    """An absolute, normalised place: an S3 bucket and key segments, or a local path's segments."""

    scheme: Scheme
    bucket: str  # "" for file
    segments: tuple[str, ...]

    @classmethod
    def file(cls, path: str) -> ObjectLocation:
        """An absolute local path, taken as it is (no normalisation beyond its segments)."""
        return cls("file", "", tuple(part for part in path.split("/") if part))

    @property
    def path(self) -> str:
        """The key (s3) or absolute path (file) this location names."""
        joined = "/".join(self.segments)
        return joined if self.scheme == "s3" else f"/{joined}"

    @property
    def uri(self) -> str:
        """The canonical URI, in the form the stores read back without ambiguity."""
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.path}"
        # Percent-encoded as Path.as_uri writes it; the file store decodes it exactly once.
        return PurePosixPath(self.path).as_uri()

    def root_uri(self) -> str:
        """How a root reads in settings and messages (``s3://b/prefix``, ``file:///dir``)."""
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.path}".rstrip("/")
        return f"file://{quote(self.path)}"

    def is_under(self, root: ObjectLocation) -> bool:
        """Strictly below ``root``, on whole segments."""
        depth = len(root.segments)
        return (
            (self.scheme, self.bucket) == (root.scheme, root.bucket)
            and len(self.segments) > depth
            and self.segments[:depth] == root.segments
        )


def parse_object_uri(uri: str, base: ObjectLocation) -> ObjectLocation | None:
    """``s3://B/KEY``, ``file:///PATH`` or a bare key (relative to ``base``), normalised.

    None when ``uri`` is anything else, malformed, or climbs above its bucket or ``/``.
    """
    found = _SCHEME.match(uri)
    if found is None:  # a bare key, under the store's own root
        if uri.startswith("/"):
            return None  # an absolute path is not a key: refused, never read as one
        return _located(base.scheme, base.bucket, uri, under=base.segments)
    scheme, rest = found.group(1).lower(), uri[found.end() :]
    if not rest.startswith("//"):
        return None
    authority, slash, path = rest[2:].partition("/")
    if scheme == "s3":
        return _located("s3", authority, path) if slash else None
    if scheme == "file" and authority.lower() in {"", "localhost"} and slash:
        return _located("file", "", path)
    return None


def _located(
    scheme: Scheme, bucket: str, path: str, *, under: tuple[str, ...] = ()
) -> ObjectLocation | None:
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    segments = _normalised(decoded, under)
    if segments is None or _FORBIDDEN.search(decoded):
        return None
    location = ObjectLocation(scheme, bucket, segments)
    if scheme == "s3":
        try:
            check_key(location.path)
        except ValueError:
            return None
    return location


def _normalised(path: str, start: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Segments of ``path`` after ``start``, with ``.`` and ``..`` applied; None above the top."""
    segments = list(start)
    for part in path.split("/"):
        if part == "..":
            if not segments:
                return None
            segments.pop()
        elif part not in {"", "."}:
            segments.append(part)
    return tuple(segments)


class AllowedPrefixes:
    """The roots init images may come from, and the one refusal for everything else."""

    def __init__(self, roots: Sequence[ObjectLocation], *, base: ObjectLocation) -> None:
        """``base`` is the store's own root: where a bare key points."""
        self.roots = tuple(roots)
        self.base = base

    @classmethod
    def from_settings(cls, store: StoreSettings) -> AllowedPrefixes:
        """Parse ``store.init_image_prefixes`` against ``store.url``; ConfigError naming it."""
        base = _root(store.url, "store.url")
        roots = [_root(entry, SETTING) for entry in store.init_image_prefixes] or [base]
        for root in roots:
            if root.scheme != base.scheme:
                raise ConfigError(
                    SETTING,
                    f"{root.root_uri()!r}: the store at store.url={store.url!r} reads only "
                    f"{base.scheme}:// objects",
                )
        return cls(roots, base=base)

    def locate(self, uri: object) -> ObjectLocation:
        """Where ``uri`` leads, if that is under an allowed root; else raise the refusal."""
        location = parse_object_uri(uri, self.base) if isinstance(uri, str) else None
        if location is None or not self.allows(location):
            raise self.refusal(uri)
        return location

    def allows(self, location: ObjectLocation) -> bool:
        return any(location.is_under(root) for root in self.roots)

    def refusal(self, uri: object) -> InvalidRequest:
        """The same error for every refused URI: it must not tell what exists where."""
        value = clip(uri) if isinstance(uri, str) else uri
        return InvalidRequest(
            "init_image_uri", value, f"must be under one of the allowed prefixes: {self}"
        )

    def with_file_roots(self, resolve: Callable[[str], str]) -> AllowedPrefixes:
        """The same allow-list with each file root's path mapped by ``resolve`` (realpath)."""
        roots = [
            ObjectLocation.file(resolve(root.path)) if root.scheme == "file" else root
            for root in self.roots
        ]
        return AllowedPrefixes(roots, base=self.base)

    def __str__(self) -> str:
        return ", ".join(root.root_uri() for root in self.roots)


def _root(url: str, setting: str) -> ObjectLocation:
    parsed = parse_store_url(url, setting=setting)
    if isinstance(parsed, FileLocation):
        # A relative directory is relative to where the worker starts, as the file store's is.
        absolute = str(parsed.root.expanduser().absolute())
        return ObjectLocation("file", "", _normalised(absolute) or ())
    prefix = tuple(part for part in parsed.prefix.split("/") if part)
    return ObjectLocation("s3", parsed.bucket, prefix)
