"""The Kafka protocol encodings and the SCRAM client that `streamgen lag` uses for share groups."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.kafka_protocol.scram import ScramClient, ScramError
from streamgen.kafka_protocol.wire import Reader, WireError, Writer, request_frame


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_an_unsigned_varint_reads_back(value: int) -> None:
    assert Reader(Writer().uvarint(value).build()).uvarint() == value


@given(st.one_of(st.none(), st.text(max_size=300)))
def test_strings_read_back_in_both_encodings(value: str | None) -> None:
    reader = Reader(Writer().string(value).compact_string(value).build())
    assert reader.string() == value
    assert reader.compact_string() == value


@given(st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=40))
def test_a_compact_array_of_int32_reads_back(values: list[int]) -> None:
    data = Writer().compact_array(values, Writer.int32).build()
    assert Reader(data).compact_array(Reader.int32) == values


def test_known_encodings() -> None:
    assert Writer().uvarint(300).build() == b"\xac\x02"
    assert Writer().compact_string("ab").build() == b"\x03ab"
    assert Writer().compact_string(None).build() == b"\x00"
    assert Writer().string(None).build() == b"\xff\xff"


def test_tagged_fields_are_skipped() -> None:
    data = Writer().uvarint(2).uvarint(0).uvarint(3).build() + b"abc"
    data += Writer().uvarint(7).uvarint(1).build() + b"z" + Writer().int32(42).build()
    reader = Reader(data)
    reader.tags()
    assert reader.int32() == 42


def test_a_short_response_is_a_wire_error_not_an_index_error() -> None:
    with pytest.raises(WireError, match="ends after 3 bytes"):
        Reader(b"\x00\x00\x01").int32()
    with pytest.raises(WireError):
        Reader(b"\x05ab").compact_string()


def test_a_request_frame_has_its_size_and_header() -> None:
    frame = request_frame(90, 1, 7, b"BODY", flexible=True)
    (size,) = struct.unpack(">i", frame[:4])
    assert size == len(frame) - 4
    reader = Reader(frame[4:])
    assert (reader.int16(), reader.int16(), reader.int32()) == (90, 1, 7)
    assert reader.string() == "streamgen-lag"
    reader.tags()
    assert frame.endswith(b"BODY")
    plain = request_frame(18, 0, 1, b"BODY", flexible=False)
    assert len(plain) == len(frame) - 1  # header v1: no tagged-fields byte


# RFC 7677, section 3: SCRAM-SHA-256 for user "user", password "pencil".
NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_sha_256_matches_rfc_7677() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=NONCE)
    assert client.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert client.final(SERVER_FIRST) == CLIENT_FINAL
    client.verify(SERVER_FINAL)


def test_a_server_that_does_not_know_the_password_is_refused() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=NONCE)
    client.final(SERVER_FIRST)
    with pytest.raises(ScramError, match="signature does not match"):
        client.verify(b"v=" + b"A" * 44)
    with pytest.raises(ScramError, match="refused the login: invalid-proof"):
        client.verify(b"e=invalid-proof")


def test_a_challenge_for_another_nonce_is_refused() -> None:
    client = ScramClient("SCRAM-SHA-512", "us=er,", "pw", nonce="abc")
    assert client.first() == b"n,,n=us=3Der=2C,r=abc"
    with pytest.raises(ScramError, match="not a SCRAM challenge"):
        client.final(b"r=xyz,s=AAAA,i=4096")
    with pytest.raises(ScramError, match="not a SCRAM mechanism"):
        ScramClient("PLAIN", "u", "p")
