from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.errors import ConfigError
from streamgen.store.uri import (
    FileLocation,
    S3Location,
    check_key,
    file_uri_path,
    parse_store_url,
    split_s3_uri,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://images", S3Location("images", "")),
        ("s3://images/", S3Location("images", "")),
        ("s3://images/prod/v1/", S3Location("images", "prod/v1")),
        ("file:///var/lib/images", FileLocation(Path("/var/lib/images"))),
        ("file://./out", FileLocation(Path("./out"))),
    ],
)
def test_store_urls_parse(url: str, expected: object) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://images", "expected file://DIR or s3://BUCKET"),
        ("s3://", "not a valid S3 bucket name"),
        ("s3://Images", "not a valid S3 bucket name"),
        ("s3://a_b", "not a valid S3 bucket name"),
        ("s3://ok-bucket/../x", "segment"),
        ("file://", "needs a directory"),
    ],
)
def test_bad_store_urls_name_the_setting(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        parse_store_url(url)
    assert caught.value.setting == "store.url"


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "a/../b", "./a", "a/.", "a\\b", "nul\0", "x" * 1025]
)
def test_keys_that_could_escape_or_collide_are_rejected(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        check_key(key)


segment = st.text(
    alphabet=st.characters(exclude_characters="/\\\0", exclude_categories=["Cs"]),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in {".", ".."})


@given(st.lists(segment, min_size=1, max_size=5))
def test_well_formed_keys_are_accepted_unchanged(parts: list[str]) -> None:
    key = "/".join(parts)
    if len(key.encode()) <= 1024:
        assert check_key(key) == key


def test_s3_uris_split_into_bucket_and_key() -> None:
    assert split_s3_uri("s3://images/req-1/0.png") == ("images", "req-1/0.png")
    for bad in ["s3://images", "s3:///key", "http://images/key", "s3://images/../etc"]:
        with pytest.raises(ValueError, match=r"s3://|segment"):
            split_s3_uri(bad)


@given(st.lists(segment, min_size=1, max_size=4))
def test_file_uris_round_trip_through_path_as_uri(parts: list[str]) -> None:
    path = Path("/data", *parts)
    assert file_uri_path(path.as_uri()) == path


def test_file_uris_must_be_local_and_absolute() -> None:
    for bad in ["file://host/x", "s3://b/k", "file:relative"]:
        with pytest.raises(ValueError, match="file"):
            file_uri_path(bad)
