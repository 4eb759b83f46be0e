"""--download: images land as <request_id>-<index>.<ext>, checked against the result's sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from streamgen.contracts.result import GenerationResult, StoredImage, WorkerIdentity
from streamgen.submit.download import download_images, local_name
from tests.support.memory_store import MemoryStore

WORKER = WorkerIdentity("w", "h")


def image(index: int, data: bytes, *, key: str = "", sha: str | None = None) -> StoredImage:
    key = key or f"r/{index}.png"
    digest = hashlib.sha256(data).hexdigest() if sha is None else sha
    return StoredImage(index, f"s3://b/{key}", "b", key, "image/png", digest, len(data))


def test_downloads_every_image_of_succeeded_results(tmp_path: Path) -> None:
    images = (image(0, b"png0"), image(1, b"png1", key="r/1.webp"))
    store = MemoryStore({"s3://b/r/0.png": b"png0", "s3://b/r/1.webp": b"png1"})
    results = [
        GenerationResult("req-1", "SUCCEEDED", WORKER, images=images),
        GenerationResult("req-2", "FAILED", WORKER, images=images),
    ]
    report = download_images(store, results, tmp_path / "out")
    assert report.failures == {}
    assert [p.name for p in report.written] == ["req-1-0.png", "req-1-1.webp"]
    assert (tmp_path / "out" / "req-1-1.webp").read_bytes() == b"png1"
    assert not list((tmp_path / "out").glob("*.part"))


def test_checksum_mismatch_missing_object_and_store_down_are_reported(tmp_path: Path) -> None:
    bad = image(0, b"x", sha="0" * 64)
    missing = image(1, b"y", key="r/gone.png")
    result = GenerationResult("req-1", "SUCCEEDED", WORKER, images=(bad, missing))
    report = download_images(MemoryStore({bad.uri: b"x"}), [result], tmp_path)
    assert report.written == []
    assert "does not match the result's 000" in report.failures[bad.uri]
    assert report.failures[missing.uri].startswith("FileNotFoundError")
    down = download_images(MemoryStore({}, down=True), [result], tmp_path)
    assert down.failures[bad.uri] == "StoreUnavailable: connection refused"


@pytest.mark.parametrize("rid", ["../etc", "..", "a/b", ""])
def test_unsafe_request_ids_never_become_paths(rid: str) -> None:
    with pytest.raises(ValueError, match="not safe as a file name"):
        local_name(rid, image(0, b""))


def test_suffix_from_content_type_when_the_key_has_none() -> None:
    webp = StoredImage(2, "s3://b/k", "b", "k", "image/webp", "", 0)
    assert local_name("r", webp) == "r-2.webp"
    odd = StoredImage(0, "s3://b/k.p?g", "b", "k.p?g", "x/unknown", "", 0)
    assert local_name("r", odd) == "r-0.bin"
