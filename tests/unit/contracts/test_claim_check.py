"""Claim checks: whatever the record, the form that goes out fits, and says where the rest is."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.contracts import dead_letter as dl
from streamgen.contracts.codec import result_codec
from streamgen.contracts.dead_letter import ClaimCheck, ClaimedObject
from streamgen.contracts.result import GenerationResult, ResultError, WorkerIdentity
from streamgen.settings import KafkaSettings
from tests.unit.contracts.strategies import DECODE_FAILURE, results

VALUE = ClaimedObject("s3://b/dead-letters/req/0/7/value", 1_040_000, "ab" * 32)
ENVELOPE = ClaimedObject("s3://b/dead-letters/req/0/7/envelope.json", 2_000_000, "cd" * 32)
WHY = DECODE_FAILURE

# Sizes from nothing to a few times any broker's limit, made of repeated bytes (cheap to draw).
SIZES = st.integers(0, 3_000_000)
BLOBS = SIZES.map(lambda n: b"\xab" * n)
NAMES = st.integers(1, 300_000).map(lambda n: "h" * n) | st.sampled_from(["app.trace", "x"])
HEADERS = st.lists(st.tuples(NAMES, BLOBS), max_size=4)


@settings(max_examples=60, deadline=None)
@given(
    key=st.none() | BLOBS,
    headers=HEADERS,
    message=SIZES.map(lambda n: "m" * n),
    value=st.none() | st.just(VALUE),
)
def test_a_claim_checked_dead_letter_fits_whatever_the_record(
    key: bytes | None, headers: list[tuple[str, bytes]], message: str, value: ClaimedObject | None
) -> None:
    envelope = None if dl.keeps_inline(key, headers) else ENVELOPE
    claim = ClaimCheck(value=value, envelope=envelope)
    why = dataclasses.replace(WHY, message=message)
    out_key, out_value, out_headers = dl.claim_checked_dead_letter(key, headers, why, claim)
    assert dl.record_bytes(out_key, out_value, out_headers) <= dl.CLAIM_CHECKED_MAX_BYTES
    assert out_value == b""
    nothing_held = value is None and envelope is None  # a tombstone small enough as it is
    assert dl.read_claim_check(out_headers) == (None if nothing_held else claim)
    assert dl.header_map(out_headers)[dl.H_CODE] == "DECODE_ERROR"
    if envelope is None:
        assert out_key == key and dl.original_headers(out_headers) == headers


def test_an_envelope_keeps_only_small_replay_provenance_inline() -> None:
    headers = [("big", b"x" * 100_000), (dl.H_REPLAY_COUNT, b"2")]
    claim = ClaimCheck(value=VALUE, envelope=ENVELOPE)
    key, _, out = dl.claim_checked_dead_letter(b"k", headers, WHY, claim)
    assert key is None
    assert dl.original_headers(out) == [(dl.H_REPLAY_COUNT, b"2")]


@given(key=st.none() | st.binary(max_size=50), headers=st.lists(st.tuples(st.text(), st.binary())))
def test_the_envelope_gives_back_the_key_and_headers_exactly(
    key: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    assert dl.decode_envelope(dl.encode_envelope(key, headers)) == (key, headers)


def test_a_record_that_carries_its_own_bytes_has_no_claim_check() -> None:
    assert dl.read_claim_check(dl.dead_letter_headers([("a", b"1")], WHY)) is None


def test_stale_error_and_claim_headers_are_not_carried_into_a_new_dead_letter() -> None:
    first = dl.claim_checked_dead_letter(b"k", [("a", b"1")], WHY, ClaimCheck(VALUE, None))[2]
    again = dl.dead_letter_headers(first, dataclasses.replace(WHY, code="OTHER"))
    assert dl.read_claim_check(again) is None
    assert [k for k, _ in again if not k.startswith(dl.ERROR_PREFIX)] == ["a"]
    assert dl.header_map(again)[dl.H_CODE] == "OTHER"


CODEC = result_codec(KafkaSettings(), "streamgen.results")
HUGE_TEXT = st.integers(0, 2_000_000).map(lambda n: "t" * n)


@settings(max_examples=40, deadline=None)
@given(
    result=results(),
    request_id=HUGE_TEXT,
    model=HUGE_TEXT,
    message=HUGE_TEXT,
    metadata=st.dictionaries(st.text(max_size=5), HUGE_TEXT, max_size=3),
)
def test_a_claim_checked_result_fits_whatever_the_result(
    result: GenerationResult, request_id: str, model: str, message: str, metadata: dict[str, str]
) -> None:
    big = dataclasses.replace(
        result,
        request_id=request_id,
        model=model,
        error=ResultError(code="GENERATION_FAILED", message=message, stage="generate"),
        metadata=metadata,
    )
    full = ClaimedObject("s3://b/r/result.avro", 5_000_000, "ef" * 32)
    fits = dl.claim_checked_result(big, full)
    headers = dl.claim_check_headers(ClaimCheck(full, None))
    encoded = CODEC.encode(fits)
    assert dl.record_bytes(fits.request_id.encode(), encoded, headers) <= dl.CLAIM_CHECKED_MAX_BYTES
    assert dl.read_claim_check(headers) == ClaimCheck(full, None)
    assert fits.metadata == dl.header_map(headers), "the value says where the full result is"
    assert (fits.status, fits.images, fits.timings) == (big.status, big.images, big.timings)


def test_a_result_that_was_small_keeps_its_fields() -> None:
    result = GenerationResult("r-1", "SUCCEEDED", WorkerIdentity("w", "h"), model="tiny")
    fits = dl.claim_checked_result(result, ClaimedObject("s3://b/r-1/result.avro", 9, "00"))
    assert (fits.request_id, fits.model) == ("r-1", "tiny")
