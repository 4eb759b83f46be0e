from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from streamgen.errors import ConfigError, StoreUnavailable
from streamgen.settings import StoreSettings
from streamgen.store import FileStore, MinioStore, open_store


def put(store: FileStore, key: str, data: bytes, index: int = 0) -> None:
    store.put(key, data, index=index, content_type="image/png", metadata={"request-id": "r1"})


def test_put_returns_a_uri_get_reads_back_and_stat_describes(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "images")
    store.ensure_ready()
    data = b"\x89PNG fake but real bytes"
    stored = store.put(
        "req-1/0.png", data, index=2, content_type="image/png", metadata={"seed": "42"}
    )
    assert stored.uri == (tmp_path / "images" / "req-1" / "0.png").as_uri()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert (stored.size_bytes, stored.index, stored.key) == (len(data), 2, "req-1/0.png")
    assert store.get(stored.uri) == data
    assert store.get("req-1/0.png") == data
    assert store.stat("req-1/0.png") == stored
    assert store.metadata("req-1/0.png")["metadata"] == {"seed": "42"}


def test_re_putting_a_key_keeps_the_first_object_and_describes_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first = store.put("k.png", b"first", index=3, content_type="image/png", metadata={})
    again = store.put("k.png", b"second", index=3, content_type="image/png", metadata={})
    assert store.get("k.png") == b"first"
    assert again == first == store.stat("k.png")
    assert again.sha256 == hashlib.sha256(b"first").hexdigest()


def test_a_sidecar_lost_in_a_crash_is_written_by_the_next_put(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("r/2.png", b"png", index=2, content_type="image/png", metadata={"seed": "7"})
    (tmp_path / ".streamgen-meta" / "r" / "2.png.json").unlink()
    again = store.put("r/2.png", b"other", index=2, content_type="image/png", metadata={})
    assert (again.index, again.sha256) == (2, hashlib.sha256(b"png").hexdigest())
    assert store.metadata("r/2.png")["index"] == 2


def test_a_missing_object_is_file_not_found_and_stat_none(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(FileNotFoundError):
        store.get("nope.png")
    with pytest.raises(FileNotFoundError):
        store.get((tmp_path / "nope.png").as_uri())
    assert store.stat("nope.png") is None


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    for i in range(5):
        put(store, f"r/{i}.png", os.urandom(100))
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failed_write_keeps_the_previous_object_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    put(store, "k.png", b"old image")

    def crash(fd: int) -> None:
        raise OSError(5, "Input/output error")

    # fsync failing stands in for a crash before the rename: the new bytes never replace
    # the old ones, and the failure is transient (retried), not a dead letter.
    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(StoreUnavailable, match="Input/output error"):
        put(store, "k.png", b"new image")
    monkeypatch.undo()
    assert store.get("k.png") == b"old image"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_an_object_without_sidecar_is_still_described(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.webp").write_bytes(b"bytes")
    stat = store.stat("a/b.webp")
    assert stat is not None
    assert (stat.content_type, stat.index, stat.size_bytes) == ("image/webp", 0, 5)


def test_bad_keys_and_foreign_uris_are_rejected(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(ValueError, match="segment"):
        put(store, "../outside.png", b"x")
    with pytest.raises(ValueError, match="reserved"):
        put(store, ".streamgen-meta/x.png", b"x")
    with pytest.raises(ValueError, match="s3://"):
        store.get("s3://bucket/key")


def test_a_root_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "images").write_bytes(b"not a directory")
    with pytest.raises(ConfigError, match=r"store\.url.*cannot create"):
        FileStore(tmp_path / "images").ensure_ready()
    with pytest.raises(ConfigError, match=r"store\.url.*cannot write"):
        put(FileStore(tmp_path / "images"), "k.png", b"x")


def test_open_store_picks_the_implementation_from_the_url(tmp_path: Path) -> None:
    assert isinstance(open_store(StoreSettings(url=f"file://{tmp_path}")), FileStore)
    s3 = open_store(StoreSettings(url="s3://images/prefix", endpoint="127.0.0.1:1"))
    assert isinstance(s3, MinioStore)
    assert (s3.bucket, s3.prefix) == ("images", "prefix")
    with pytest.raises(ConfigError, match=r"store\.url"):
        open_store(StoreSettings(url="ftp://x"))
