"""InitImageReader on a real directory: symlinks resolved before the read, sizes capped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamgen.contracts.validation import clip
from streamgen.errors import InvalidRequest
from streamgen.settings import StoreSettings
from streamgen.store.base import ObjectTooLarge
from streamgen.store.file_store import FileStore
from streamgen.store.init_images import InitImageReader
from tests.support.memory_store import MemoryStore


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """store/in/cat.png, outside/secret.png, and links from inside the store to both."""
    (tmp_path / "store" / "in").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "store" / "in" / "cat.png").write_bytes(b"cat")
    (tmp_path / "outside" / "secret.png").write_bytes(b"secret")
    links = tmp_path / "store" / "in"
    (links / "inside.png").symlink_to(links / "cat.png")
    (links / "secret.png").symlink_to(tmp_path / "outside" / "secret.png")
    (links / "missing.png").symlink_to(tmp_path / "outside" / "missing.png")
    (links / "outside").symlink_to(tmp_path / "outside")
    (links / "loop.png").symlink_to(links / "loop.png")
    return tmp_path


def reader(root: Path, *, max_bytes: int = 1024, prefixes: tuple[str, ...] = ()) -> InitImageReader:
    settings = StoreSettings(
        url=f"file://{root}", init_image_prefixes=prefixes, init_image_max_bytes=max_bytes
    )
    return InitImageReader.from_settings(settings, FileStore(root))


def test_files_under_the_root_are_read_through_links_that_stay_inside(tree: Path) -> None:
    read = reader(tree / "store").read
    assert read((tree / "store" / "in" / "cat.png").as_uri()) == b"cat"
    assert read((tree / "store" / "in" / "inside.png").as_uri()) == b"cat"
    assert read("in/cat.png") == b"cat"


def test_links_that_lead_outside_are_refused_like_any_outsider(tree: Path) -> None:
    read = reader(tree / "store").read
    links = tree / "store" / "in"
    refused = [
        (links / "secret.png").as_uri(),  # target exists
        (links / "missing.png").as_uri(),  # target does not
        (links / "outside" / "secret.png").as_uri(),  # through a linked directory
        (tree / "outside" / "secret.png").as_uri(),  # named directly
    ]
    messages = set()
    for uri in refused:
        with pytest.raises(InvalidRequest) as caught:
            read(uri)
        messages.add(str(caught.value).replace(repr(clip(uri)), "URI"))
    assert messages == {
        f"init_image_uri=URI is invalid: must be under one of the allowed prefixes: "
        f"file://{tree / 'store'}"
    }


def test_a_root_that_is_itself_a_link_works(tree: Path) -> None:
    (tree / "alias").symlink_to(tree / "store")
    assert reader(tree / "alias").read((tree / "alias" / "in" / "cat.png").as_uri()) == b"cat"
    # ...and a link inside the store that points into the alias stays inside.
    (tree / "store" / "in" / "via-alias.png").symlink_to(tree / "alias" / "in" / "cat.png")
    read = reader(tree / "store").read
    assert read((tree / "store" / "in" / "via-alias.png").as_uri()) == b"cat"


def test_an_allowed_second_root_may_be_reached_through_a_link(tree: Path) -> None:
    read = reader(
        tree / "store", prefixes=(f"file://{tree / 'store'}", f"file://{tree / 'outside'}")
    ).read
    assert read((tree / "store" / "in" / "secret.png").as_uri()) == b"secret"


def test_missing_objects_directories_and_fifos_are_not_objects(tree: Path) -> None:
    read = reader(tree / "store").read
    os.mkfifo(tree / "store" / "in" / "fifo.png")
    for name in ("nothing.png", "fifo.png", "loop.png", "x" * 300):  # a FIFO must not hang
        with pytest.raises(FileNotFoundError):
            read((tree / "store" / "in" / name).as_uri())
    (tree / "store" / "in" / "dir.png").mkdir()
    with pytest.raises(FileNotFoundError):
        read((tree / "store" / "in" / "dir.png").as_uri())


def test_objects_over_the_limit_are_refused(tree: Path) -> None:
    (tree / "store" / "in" / "big.png").write_bytes(b"x" * 11)
    (tree / "store" / "in" / "fits.png").write_bytes(b"x" * 10)
    read = reader(tree / "store", max_bytes=10).read
    with pytest.raises(ObjectTooLarge) as caught:
        read("in/big.png")
    assert caught.value.limit == 10
    assert read("in/fits.png") == b"x" * 10


def test_s3_uris_reach_the_store_normalised() -> None:
    store = MemoryStore({"s3://images/in/cat one.png": b"cat"})
    read = InitImageReader.from_settings(StoreSettings(url="s3://images/in"), store).read
    assert read("s3://images/in/x/../cat%20one.png") == b"cat"
    with pytest.raises(InvalidRequest):
        read("s3://other/cat.png")
    assert store.reads == ["s3://images/in/cat one.png"]
