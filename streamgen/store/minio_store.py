"""An object store on MinIO or any S3-compatible endpoint, through the ``minio`` client.

Every failure that may pass on its own (connection refused, timeout, 5xx, throttling) becomes
:class:`~streamgen.errors.StoreUnavailable` naming the endpoint, so the worker retries with
backoff; credentials or bucket names the server rejects become a
:class:`~streamgen.errors.ConfigError` naming the setting to fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from streamgen.contracts.result import StoredImage
from streamgen.errors import ConfigError, FatalError, StoreUnavailable
from streamgen.store.base import ObjectTooLarge
from streamgen.store.uri import check_key, split_s3_uri

__all__ = ["MinioStore"]

T = TypeVar("T")

# The worker retries with its own backoff while partitions stay paused; a client that retried
# and waited on its own would hide an outage for minutes. Fail fast, let the worker decide.
_CONNECT_TIMEOUT_S = 3.0
_READ_TIMEOUT_S = 30.0

_CONFIG_CODES = {
    "AccessDenied": "store.access_key",
    "InvalidAccessKeyId": "store.access_key",
    "SignatureDoesNotMatch": "store.secret_key",
    "InvalidBucketName": "store.url",
    "AuthorizationHeaderMalformed": "store.region",
}
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "XMinioServerNotInitialized",
    "XMinioStorageFull",
    # AWS S3: a conditional write raced another one still in flight on the same key (409).
    "ConditionalRequestConflict",
}
# If-None-Match: * refused because an object is already under the key (HTTP 412).
_ALREADY_WRITTEN = "PreconditionFailed"
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}
_META = "x-amz-meta-"
# Header values must be visible ASCII; anything else is percent-encoded on the way in.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class MinioStore:
    """Objects under ``s3://bucket/prefix/``; keys are given by the caller."""

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        prefix: str = "",
        secure: bool = False,
        region: str = "",
        connect_timeout: float = _CONNECT_TIMEOUT_S,
        read_timeout: float = _READ_TIMEOUT_S,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
            maxsize=8,
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            # A fixed region spares a GetBucketLocation round trip before the first request.
            region=region or "us-east-1",
            http_client=http,
        )

    def ensure_ready(self, *, create: bool = True) -> None:
        def check() -> None:
            if self._client.bucket_exists(self.bucket):
                return
            if not create:
                raise ConfigError(
                    "store.url",
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}. Fix the name, "
                    "create the bucket, or set store.create_bucket=true to let the worker "
                    "create it.",
                )
            try:
                self._client.make_bucket(self.bucket)
            except S3Error as exc:
                # Another worker created it between our check and our request.
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

        self._call(f"check bucket {self.bucket}", check)

    def put(
        self,
        key: str,
        data: bytes,
        *,
        index: int,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> StoredImage:
        # A HEAD first spares the upload on a redo, and keeps the first object even on an
        # S3-compatible endpoint that ignores If-None-Match; the conditional PUT closes the
        # window between the two, where another worker redoing the same request may write.
        existing = self.stat(key)
        if existing is not None:
            return existing
        name = self._object_name(key)
        sha256 = hashlib.sha256(data).hexdigest()
        user = {**metadata, "sha256": sha256, "index": str(index)}
        headers: dict[str, str | list[str] | tuple[str]] = {
            _META + _check_meta_key(k): quote(v, safe=_SAFE) for k, v in user.items()
        }
        headers |= {"Content-Type": content_type, "If-None-Match": "*"}

        def write() -> bool:
            try:
                # One PutObject of the whole body: the public put_object cannot send
                # If-None-Match, and a multipart upload would need it on its completion.
                self._client._put_object(self.bucket, name, data, headers)
            except S3Error as exc:
                if exc.code == _ALREADY_WRITTEN:
                    return False
                raise
            return True

        if self._call(f"put {name}", write):
            return self._describe(key, index, content_type, sha256, len(data))
        kept = self.stat(key)
        if kept is None:
            # Written by another, then deleted (by an operator): try again, as for an outage.
            raise StoreUnavailable(f"object store at {self.endpoint}: {name} vanished")
        return kept

    def get(self, uri: str, *, max_bytes: int | None = None) -> bytes:
        if uri.startswith("s3://"):
            bucket, name = split_s3_uri(uri)
        elif "://" in uri:
            raise ValueError(f"{uri!r}: an S3 store reads s3:// URIs or bare keys")
        else:
            bucket, name = self.bucket, self._object_name(uri)

        def read() -> bytes:
            response = self._client.get_object(bucket, name)
            try:
                if max_bytes is None:
                    return bytes(response.read())
                # Refuse on the announced length before reading the body, and read at most
                # one byte past the limit in case the length was not announced.
                if int(response.headers.get("Content-Length") or 0) > max_bytes:
                    raise ObjectTooLarge(f"s3://{bucket}/{name}", max_bytes)
                data = bytes(response.read(max_bytes + 1))
                if len(data) > max_bytes:
                    raise ObjectTooLarge(f"s3://{bucket}/{name}", max_bytes)
                return data
            finally:
                response.close()
                response.release_conn()

        return self._call(f"get {bucket}/{name}", read, missing=f"s3://{bucket}/{name}")

    def stat(self, key: str) -> StoredImage | None:
        name = self._object_name(key)
        try:
            info = self._call(f"stat {name}", lambda: self._client.stat_object(self.bucket, name))
        except FileNotFoundError:
            return None
        meta = _user_metadata(info.metadata)
        # An object written by another tool has no sha256 in its metadata: hash its bytes.
        sha256 = meta.get("sha256") or hashlib.sha256(self.get(key)).hexdigest()
        content_type = info.content_type or "application/octet-stream"
        index = int(meta.get("index", "0"))
        return self._describe(key, index, content_type, sha256, int(info.size or 0))

    def metadata(self, key: str) -> dict[str, str]:
        """The user metadata of an object (``x-amz-meta-*`` without the prefix, decoded)."""
        name = self._object_name(key)
        info = self._call(f"stat {name}", lambda: self._client.stat_object(self.bucket, name))
        return _user_metadata(info.metadata)

    def _object_name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _describe(
        self, key: str, index: int, content_type: str, sha256: str, size: int
    ) -> StoredImage:
        name = self._object_name(key)
        return StoredImage(
            index=index,
            uri=f"s3://{self.bucket}/{name}",
            bucket=self.bucket,
            key=name,
            content_type=content_type,
            sha256=sha256,
            size_bytes=size,
        )

    def _call(self, what: str, operation: Callable[[], T], *, missing: str = "") -> T:
        """Run one client call and translate its failures into streamgen's error classes."""
        where = f"object store at {self.endpoint}"
        try:
            return operation()
        except S3Error as exc:
            if exc.code in _NOT_FOUND_CODES:
                raise FileNotFoundError(f"{missing or what}: {exc.code}") from None
            if exc.code in _CONFIG_CODES:
                # A HEAD answer has no body, so a bad secret and a bad key both read as
                # AccessDenied: name the pair.
                hint = (
                    " (check store.access_key and store.secret_key)"
                    if exc.code == "AccessDenied"
                    else ""
                )
                raise ConfigError(
                    _CONFIG_CODES[exc.code], f"{where} refused to {what}: {exc.code}{hint}"
                ) from exc
            status = exc.response.status if exc.response is not None else 0
            if exc.code in _TRANSIENT_CODES or status >= 500:
                raise StoreUnavailable(f"{where} failed to {what}: {exc.code}") from exc
            raise FatalError(f"{where} rejected {what}: {exc.code}: {exc.message}") from exc
        except ServerError as exc:
            raise StoreUnavailable(f"{where} failed to {what}: HTTP {exc.status_code}") from exc
        except InvalidResponseError as exc:
            raise StoreUnavailable(f"{where} gave a non-S3 answer to {what}: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"{where} unreachable during {what}: {exc}") from exc


def _user_metadata(headers: Mapping[str, Any] | None) -> dict[str, str]:
    if headers is None:
        return {}
    return {
        header.lower().removeprefix(_META): unquote(str(value))
        for header, value in headers.items()
        if header.lower().startswith(_META)
    }


def _check_meta_key(key: str) -> str:
    if not key or not all(c.isascii() and (c.isalnum() or c == "-") for c in key):
        raise ValueError(f"metadata key {key!r} must be ASCII letters, digits and '-'")
    return key.lower()
