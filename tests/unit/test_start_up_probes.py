"""What the start-up probes make of the answers they get (the listener and the registry)."""

from __future__ import annotations

import struct

import pytest

from streamgen.errors import ConfigError
from streamgen.listener_probe import Listener, check_listeners, classify_reply
from streamgen.registry_probe import check_registry_url, describe_subjects_reply


@pytest.mark.parametrize(
    ("reply", "listener"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n", Listener.HTTP),
        (b"\x15\x03\x03\x00\x02\x02\x32", Listener.TLS),  # a TLS alert record
        (b"\x16\x03\x03\x00\x5a", Listener.TLS),  # a TLS handshake record
        (struct.pack(">ii", 6, 0x5354_4D47), Listener.KAFKA),  # our correlation id echoed
        (struct.pack(">ii", 6, 7), Listener.UNKNOWN),  # someone else's
        (b"", Listener.UNKNOWN),
        (b"SSH-2.0-OpenSSH", Listener.UNKNOWN),
    ],
)
def test_a_reply_says_what_answered(reply: bytes, listener: Listener) -> None:
    assert classify_reply(reply) is listener


def test_an_address_nobody_listens_on_is_left_to_librdkafka() -> None:
    check_listeners({"bootstrap.servers": "127.0.0.1:1,not-an-address"}, timeout=0.5)


@pytest.mark.parametrize(
    ("status", "content_type", "body", "wrong"),
    [
        (200, "application/json", b'["a-value", "b-value"]', None),
        (200, "application/json", b"[]", None),
        (404, "application/json", b'{"error_code": 404}', "404"),
        (200, "text/html", b"<html>MinIO Console</html>", "not a JSON list of subjects"),
        (200, "application/json", b'{"subjects": []}', "not a JSON list of subjects"),
        (403, "application/xml", b"<Error>AccessDenied</Error>", "HTTP 403"),
        (401, "application/json", b'{"error_code": 401}', "refuses anonymous access"),
        (503, "text/plain", b"starting", "HTTP 503"),
    ],
)
def test_only_a_list_of_subjects_is_a_registry(
    status: int, content_type: str, body: bytes, wrong: str | None
) -> None:
    said = describe_subjects_reply(status, content_type, body)
    if wrong is None:
        assert said is None
    else:
        assert said is not None and wrong in said


@pytest.mark.parametrize("url", ["127.0.0.1:8081", "ftp://host/x", "http://"])
def test_a_registry_url_that_is_no_http_url_is_refused_at_once(url: str) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.schema_registry_url"):
        check_registry_url(url, timeout=5.0)


def test_nothing_answering_is_retried_until_the_timeout() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(ConfigError, match=r"no schema registry answered .* within 2s"):
        check_registry_url("http://127.0.0.1:1", 2.0, sleep=sleep, clock=lambda: now[0])
    assert slept and sum(slept) == pytest.approx(2.0)
