"""The init-image allow-list: parsing, lexical normalisation, whole-segment matching, one
refusal for everything outside."""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.errors import ConfigError, InvalidRequest
from streamgen.settings import StoreSettings
from streamgen.store.prefixes import AllowedPrefixes, ObjectLocation


def prefixes(url: str, *roots: str) -> AllowedPrefixes:
    return AllowedPrefixes.from_settings(StoreSettings(url=url, init_image_prefixes=roots))


S3 = prefixes("s3://images/out", "s3://images/in", "s3://uploads")


@pytest.mark.parametrize(
    ("uri", "canonical"),
    [
        ("s3://images/in/cat.png", "s3://images/in/cat.png"),
        ("S3://images/in//a/./b/../cat.png", "s3://images/in/a/cat.png"),
        ("s3://images/in/%63at%20one.png", "s3://images/in/cat one.png"),
        ("s3://images/out/x/../../in/cat.png", "s3://images/in/cat.png"),
        ("s3://uploads/any/depth/x.png", "s3://uploads/any/depth/x.png"),
        ("../in/cat.png", "s3://images/in/cat.png"),  # a bare key is under store.url
    ],
)
def test_allowed_uris_are_normalised(uri: str, canonical: str) -> None:
    assert S3.locate(uri).uri == canonical


@pytest.mark.parametrize(
    "uri",
    [
        "s3://images/in-secret/cat.png",  # a prefix of the name, not of the path
        "s3://images/in",  # the root itself is no object under it
        "s3://images/in/",
        "s3://images/out/cat.png",  # store.url is not allowed once prefixes are listed
        "s3://other/in/cat.png",
        "s3://images/in/../secret/cat.png",
        "s3://images/in/%2e%2e/secret/cat.png",
        "s3://images/in/%2E%2E%2Fsecret%2Fcat.png",
        "s3://images/../../x",  # above the bucket
        "s3://images/in/a\\..\\..\\x.png",
        "s3://images/in/nul%00.png",
        "s3://images/in/bad-utf8-%ff.png",
        "s3://images/in/" + "k" * 1100,  # longer than an S3 key may be
        "s3:/images/in/cat.png",
        "file:///etc/passwd",
        "http://example/x.png",
        "mem://cat.png",
        "",
        "cat.png",  # bare key: under s3://images/out, which is not listed
        "/etc/passwd",  # an absolute path is no key, and is never read as one
        "/in/cat.png",
    ],
)
def test_everything_else_is_refused_with_one_message(uri: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        S3.locate(uri)
    assert caught.value.field == "init_image_uri"
    assert caught.value.allowed == (
        "must be under one of the allowed prefixes: s3://images/in, s3://uploads"
    )


def test_a_refusal_does_not_depend_on_the_object() -> None:
    messages = {
        str(S3.refusal(uri)).replace(uri, "URI")
        for uri in ("s3://x/exists.png", "s3://x/missing.png", "file:///etc/shadow")
    }
    assert len(messages) == 1


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        S3.locate(None)
    with pytest.raises(InvalidRequest):
        S3.locate(b"s3://images/in/cat.png")


def test_file_uris(tmp_path: Path) -> None:
    allowed = prefixes(f"file://{tmp_path}")
    cat = tmp_path / "in" / "cat 1.png"
    assert allowed.locate(cat.as_uri()).path == str(cat)
    assert allowed.locate(f"file://localhost{tmp_path}/in/cat.png").path == f"{tmp_path}/in/cat.png"
    assert allowed.locate("in/cat.png").path == f"{tmp_path}/in/cat.png"
    for outsider in (
        f"file://{tmp_path}/../x.png",
        f"file://{tmp_path}-other/x.png",
        f"file://host{tmp_path}/x.png",
        f"file:{tmp_path}/x.png",
        "file:///../../etc/passwd",
    ):
        with pytest.raises(InvalidRequest):
            allowed.locate(outsider)


def test_the_default_is_the_store_root_made_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/tmp")
    assert str(prefixes("file://./images/../streamgen-images")) == "file:///tmp/streamgen-images"
    assert str(prefixes("s3://images/out/")) == "s3://images/out"
    assert str(prefixes("s3://images")) == "s3://images"


@pytest.mark.parametrize(
    ("url", "roots", "message"),
    [
        ("s3://images", ("file:///data",), "reads only s3://"),
        ("file:///data", ("s3://images",), "reads only file://"),
        ("s3://images", ("s3://Bad_Bucket",), "not a valid S3 bucket name"),
        ("s3://images", ("s3://images/../x",), "segment"),
        ("s3://images", ("http://images",), "expected file://DIR or s3://"),
    ],
)
def test_bad_prefixes_name_the_setting(url: str, roots: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        prefixes(url, *roots)
    assert caught.value.setting == "store.init_image_prefixes"


def test_file_roots_can_be_mapped_for_resolution() -> None:
    allowed = prefixes("file:///link").with_file_roots(lambda path: path.replace("link", "real"))
    assert allowed.allows(ObjectLocation.file("/real/x.png"))
    assert not allowed.allows(ObjectLocation.file("/link/x.png"))


# -- whatever a path is made of, it never leaves its root ------------------------------------

S3_IN = prefixes("s3://images/in")
FILE_IN = prefixes("file:///srv/in")
SEGMENTS = st.sampled_from(
    ["..", ".", "", "in", "in-secret", "secret", "x.png", "%2e%2e", "%2E.", "a%2F..", "%2f"]
)


def _climbs(path: str) -> bool:
    """A reference model: does some prefix of ``path`` go above the top?"""
    depth = 0
    for part in path.split("/"):
        depth += {"..": -1, ".": 0, "": 0}.get(part, 1)
        if depth < 0:
            return True
    return False


@given(st.lists(SEGMENTS, max_size=10), st.sampled_from(["s3", "file", "bare"]))
def test_no_generated_path_escapes_its_root(parts: list[str], kind: str) -> None:
    joined = "/".join(parts)
    # (allow-list, request URI, the decoded path from the bucket or /, the root as a path)
    allowed, uri, decoded, root = {
        "s3": (S3_IN, f"s3://images/{joined}", unquote(joined), "/in/"),
        "file": (FILE_IN, f"file:///srv/{joined}", unquote(f"srv/{joined}"), "/srv/in/"),
        "bare": (S3_IN, f"../{joined}", unquote(f"in/../{joined}"), "/in/"),
    }[kind]
    # What an ordinary path library makes of it (it clamps at the top instead of refusing).
    normal = posixpath.normpath("/" + decoded.lstrip("/"))
    try:
        location = allowed.locate(uri)
    except InvalidRequest:
        assert _climbs(decoded) or not normal.startswith(root)
        return
    assert not _climbs(decoded)
    assert "/" + location.path.lstrip("/") == normal
    assert normal.startswith(root)
    assert {"..", ".", ""}.isdisjoint(location.segments)


@given(st.text(min_size=1, max_size=40))
def test_any_text_is_allowed_or_refused_never_an_exception(text: str) -> None:
    try:
        location = S3.locate(text)
    except InvalidRequest:
        return
    assert S3.allows(location)
    if "%" not in location.path:  # s3 URIs go to the store decoded: "%" is literal there
        assert S3.locate(location.uri) == location


@given(st.text(min_size=1, max_size=20).filter(lambda t: "/" not in t and t not in {".", ".."}))
def test_a_name_round_trips_through_its_percent_encoding(name: str) -> None:
    try:
        location = S3.locate(f"s3://images/in/{quote(name)}")
    except InvalidRequest:
        return  # control characters, backslashes
    assert location.segments == ("in", name)
