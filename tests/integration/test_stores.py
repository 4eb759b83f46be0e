"""Both object stores against real storage: the MinIO server of the stack and a directory."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from minio import Minio

from streamgen.contracts.result import StoredImage
from streamgen.errors import ConfigError, StoreUnavailable
from streamgen.local.stack import LocalStack
from streamgen.settings import Settings
from streamgen.store import FileStore, MinioStore, open_store
from streamgen.store.base import ObjectTooLarge

pytestmark = pytest.mark.integration


def minio_store(settings: Settings) -> MinioStore:
    store = open_store(settings.store)
    assert isinstance(store, MinioStore)
    return store


def raw_client(stack: LocalStack) -> Minio:
    return Minio(
        stack.minio_endpoint,
        access_key=stack.minio_access_key,
        secret_key=stack.minio_secret_key,
        secure=False,
    )


def test_minio_put_get_stat_with_metadata_and_content_type(
    stack: LocalStack, stack_settings: Settings
) -> None:
    store = minio_store(stack_settings)
    store.ensure_ready()
    data = os.urandom(4096)
    metadata = {"request-id": "req-1", "seed": "1234", "model": "tiny-ünïcode"}
    stored = store.put("req-1/0.png", data, index=0, content_type="image/png", metadata=metadata)

    assert stored.uri == f"s3://{store.bucket}/req-1/0.png"
    assert (stored.bucket, stored.key) == (store.bucket, "req-1/0.png")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size_bytes == len(data)
    assert store.get(stored.uri) == data
    assert store.get("req-1/0.png") == data
    assert store.stat("req-1/0.png") == stored
    assert store.metadata("req-1/0.png") == {
        **metadata,
        "sha256": stored.sha256,
        "index": "0",
    }
    # What another S3 client sees: the headers really are on the object.
    seen = raw_client(stack).stat_object(store.bucket, "req-1/0.png")
    assert seen.content_type == "image/png"
    assert seen.metadata is not None
    assert seen.metadata["x-amz-meta-request-id"] == "req-1"
    assert seen.metadata["x-amz-meta-sha256"] == stored.sha256


def test_minio_bucket_is_created_if_missing_and_prefix_is_applied(
    stack: LocalStack, stack_settings: Settings
) -> None:
    bucket = f"auto-{uuid.uuid4().hex[:12]}"
    settings = replace(stack_settings.store, url=f"s3://{bucket}/run-7")
    assert not raw_client(stack).bucket_exists(bucket)
    store = minio_store(replace(stack_settings, store=settings))
    store.ensure_ready()
    store.ensure_ready()  # idempotent
    assert raw_client(stack).bucket_exists(bucket)
    stored = store.put("r/1.webp", b"webp", index=1, content_type="image/webp", metadata={})
    assert stored.uri == f"s3://{bucket}/run-7/r/1.webp"
    assert raw_client(stack).get_object(bucket, "run-7/r/1.webp").read() == b"webp"


def test_minio_missing_object_is_file_not_found_and_stat_none(stack_settings: Settings) -> None:
    store = minio_store(stack_settings)
    store.ensure_ready()
    assert store.stat("nope/0.png") is None
    with pytest.raises(FileNotFoundError, match="nope"):
        store.get("nope/0.png")
    with pytest.raises(FileNotFoundError):
        store.get("s3://no-such-bucket-here/x.png")


@pytest.mark.parametrize("kind", ["minio", "file"])
def test_a_read_with_max_bytes_refuses_larger_objects(
    kind: str, stack_settings: Settings, tmp_path: Path
) -> None:
    store = minio_store(stack_settings) if kind == "minio" else FileStore(tmp_path)
    store.ensure_ready()
    meta: dict[str, str] = {}
    big = store.put("big.bin", b"x" * 101, index=0, content_type="image/png", metadata=meta)
    fits = store.put("fits.bin", b"x" * 100, index=0, content_type="image/png", metadata=meta)
    with pytest.raises(ObjectTooLarge) as caught:
        store.get(big.uri, max_bytes=100)
    assert caught.value.limit == 100
    assert store.get(fits.uri, max_bytes=100) == b"x" * 100
    assert store.get(big.uri) == b"x" * 101


@pytest.mark.parametrize("kind", ["minio", "file"])
def test_an_object_once_written_keeps_its_bytes_and_every_writer_gets_them(
    kind: str, stack_settings: Settings, tmp_path: Path
) -> None:
    """DESIGN invariant 3: a redo, or two workers redoing one request at once, never rewrite
    an object an event may already name; each writer is told what is stored."""
    store = minio_store(stack_settings) if kind == "minio" else FileStore(tmp_path)
    store.ensure_ready()

    first = store.put("r/result.avro", b"first", index=0, content_type="a/b", metadata={})
    again = store.put("r/result.avro", b"redo", index=0, content_type="a/b", metadata={})
    assert store.get("r/result.avro") == b"first"
    assert again == first and again.sha256 == hashlib.sha256(b"first").hexdigest()

    # Writers released together, so that each finds the key empty before any has written:
    # the store, not a check before the write, must pick one winner.
    writers, rounds = 4, 12
    for round_ in range(rounds):
        key = f"race-{round_}/0.png"
        start = threading.Barrier(writers)

        def write(writer: int, key: str = key, start: threading.Barrier = start) -> StoredImage:
            data = f"writer {writer} of {key}".encode() * 100
            start.wait()
            return store.put(key, data, index=0, content_type="image/png", metadata={})

        with ThreadPoolExecutor(writers) as pool:
            told = set(pool.map(write, range(writers)))
        stored = store.get(key)
        assert len(told) == 1, f"{key}: writers were told of {len(told)} different objects"
        [description] = told
        assert description.sha256 == hashlib.sha256(stored).hexdigest()


def test_minio_rejects_wrong_credentials_naming_the_setting(stack_settings: Settings) -> None:
    settings = replace(stack_settings.store, secret_key="wrong-secret-key")
    with pytest.raises(ConfigError, match=r"store\.secret_key"):
        minio_store(replace(stack_settings, store=settings)).ensure_ready()


def test_minio_stopped_is_store_unavailable_not_a_hang(
    stack: LocalStack, stack_settings: Settings
) -> None:
    store = minio_store(stack_settings)
    store.ensure_ready()
    stack.stop_minio()
    try:
        with pytest.raises(StoreUnavailable, match=stack.minio_endpoint):
            store.put("k.png", b"x", index=0, content_type="image/png", metadata={})
        with pytest.raises(StoreUnavailable, match=stack.minio_endpoint):
            store.get("k.png")
    finally:
        stack.start_minio()
    # The same client object recovers once the server is back: no poisoned pool.
    stored = store.put("k.png", b"x", index=0, content_type="image/png", metadata={})
    assert store.get(stored.uri) == b"x"


def test_minio_unreachable_endpoint_fails_fast() -> None:
    # Nothing listens on port 1; the error must come from the connect, not a retry loop.
    store = MinioStore(endpoint="127.0.0.1:1", access_key="a", secret_key="b", bucket="images")
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
        store.ensure_ready()


def test_file_store_round_trip_through_open_store(tmp_path: Path) -> None:
    store = open_store(replace(Settings().store, url=f"file://{tmp_path}/images"))
    assert isinstance(store, FileStore)
    store.ensure_ready()
    stored = store.put("a/0.png", b"png", index=0, content_type="image/png", metadata={})
    assert Path(stored.uri.removeprefix("file://")).read_bytes() == b"png"
    assert store.get(stored.uri) == b"png"
    with pytest.raises(FileNotFoundError):
        store.get("a/1.png")
