"""The Avro codec: round trips in both framings, evolution, and every way bytes can be bad."""

from __future__ import annotations

import dataclasses
import io
import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgen.contracts.codec import (
    REQUEST_CONTRACT,
    AvroCodec,
    EncodeError,
    SchemaRegistryUnavailable,
    _naive_datetime_field,
    request_codec,
    result_codec,
)
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult, WorkerIdentity
from streamgen.contracts.schemas import REQUEST_SCHEMA, load_catalog
from streamgen.errors import DecodeError, TransientError
from streamgen.settings import KafkaSettings
from tests.unit.contracts.strategies import requests, results

TOPIC = "streamgen.requests"
NO_REGISTRY = KafkaSettings()
CURRENT = load_catalog().current(REQUEST_SCHEMA)
V1 = next(s for s in load_catalog().versions(REQUEST_SCHEMA) if s.version == "v1")
V1_RECORD: dict[str, Any] = {
    "request_id": "old-1",
    "prompt": "a lighthouse",
    "negative_prompt": "",
    "model": "default",
    "width": 64,
    "height": 96,
    "steps": 4,
    "guidance_scale": 3.0,
    "seed": 7,
    "created_at": None,
}


def mock_registry() -> SchemaRegistryClient:
    client: SchemaRegistryClient = SchemaRegistryClient.new_client({"url": "mock://test"})
    return client


def avro_body(schema: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


def a_request(**changes: Any) -> GenerationRequest:
    return GenerationRequest(request_id="r-1", prompt="a red bicycle").replace(**changes)


# -- round trips ------------------------------------------------------------------------------


@given(requests())
def test_single_object_round_trip_of_requests(request: GenerationRequest) -> None:
    codec = request_codec(NO_REGISTRY, TOPIC)
    data = codec.encode(request)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == CURRENT.fingerprint
    assert codec.decode(data) == request


@given(results())
def test_single_object_round_trip_of_results(result: GenerationResult) -> None:
    codec = result_codec(NO_REGISTRY, "streamgen.results")
    assert codec.decode(codec.encode(result)) == result


@pytest.fixture(scope="module")
def registry() -> SchemaRegistryClient:
    """One in-memory registry for the Hypothesis tests (a fresh client per example is slow)."""
    client = mock_registry()
    client.register_schema(f"{TOPIC}-value", Schema(CURRENT.text, "AVRO"))
    return client


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests(), result=results())
def test_schema_registry_round_trip(
    registry: SchemaRegistryClient, request: GenerationRequest, result: GenerationResult
) -> None:
    requests_codec = request_codec(NO_REGISTRY, TOPIC, registry=registry)
    results_codec = result_codec(NO_REGISTRY, "streamgen.results", registry=registry)
    data = requests_codec.encode(request)
    schema_id = int.from_bytes(data[1:5], "big")
    assert data[0] == 0
    assert registry.get_latest_version(f"{TOPIC}-value").schema_id == schema_id
    assert requests_codec.decode(data) == request
    assert results_codec.decode(results_codec.encode(result)) == result


def test_registry_url_in_settings_selects_registry_framing() -> None:
    codec = request_codec(KafkaSettings(schema_registry_url="mock://settings"), TOPIC)
    data = codec.encode(a_request())
    assert data[0] == 0
    assert codec.decode(data) == a_request()


def test_a_registry_codec_still_decodes_single_object_bytes() -> None:
    single = request_codec(NO_REGISTRY, TOPIC).encode(a_request())
    assert request_codec(NO_REGISTRY, TOPIC, registry=mock_registry()).decode(single) == a_request()


def test_decoded_timestamps_are_timezone_aware() -> None:
    codec = request_codec(NO_REGISTRY, TOPIC)
    sent = a_request(deadline=datetime.fromisoformat("2031-02-03T04:05:06.789+02:00"))
    decoded = codec.decode(codec.encode(sent))
    assert decoded.deadline is not None
    assert decoded.deadline.tzinfo is not None
    assert decoded.deadline == sent.deadline


# -- evolution --------------------------------------------------------------------------------


def test_v1_single_object_bytes_decode_into_the_current_request_with_defaults() -> None:
    data = b"\xc3\x01" + V1.fingerprint + avro_body(V1.parsed, V1_RECORD)
    decoded = request_codec(NO_REGISTRY, TOPIC).decode(data)
    assert decoded == GenerationRequest(
        request_id="old-1",
        prompt="a lighthouse",
        width=64,
        height=96,
        steps=4,
        guidance_scale=3.0,
        seed=7,
    )
    assert (decoded.task, decoded.num_images, decoded.metadata) == ("txt2img", 1, {})


def test_v1_registry_bytes_decode_into_the_current_request() -> None:
    registry = mock_registry()
    old_id = registry.register_schema(f"{TOPIC}-value", Schema(V1.text, "AVRO"))
    data = b"\x00" + old_id.to_bytes(4, "big") + avro_body(V1.parsed, V1_RECORD)
    decoded = request_codec(NO_REGISTRY, TOPIC, registry=registry).decode(data)
    assert (decoded.request_id, decoded.strength, decoded.scheduler) == ("old-1", 0.8, None)


# -- every framing error ----------------------------------------------------------------------


def decode_error(data: bytes | None, codec: AvroCodec[Any] | None = None) -> str:
    with pytest.raises(DecodeError) as caught:
        (codec or request_codec(NO_REGISTRY, TOPIC)).decode(data)
    return str(caught.value)


def test_tombstone_and_empty_value() -> None:
    assert "tombstone" in decode_error(None)
    assert decode_error(b"").startswith("empty value")


def test_unknown_magic_byte() -> None:
    assert decode_error(b'{"json": 1}').startswith("unknown magic byte 0x7b")


def test_truncated_single_object_header() -> None:
    assert decode_error(b"\xc3\x01\x00") == (
        "truncated: need 10 bytes of single-object header, got 3"
    )


def test_bad_single_object_marker() -> None:
    assert decode_error(b"\xc3\x02" + CURRENT.fingerprint).startswith(
        "bad single-object marker 0xc3 0x02"
    )


def test_unknown_fingerprint_is_named_with_the_known_ones() -> None:
    fp = (0x0123456789ABCDEF).to_bytes(8, "little")
    message = decode_error(b"\xc3\x01" + fp + b"\x00")
    assert message.startswith("unknown single-object fingerprint 0x0123456789abcdef")
    assert CURRENT.fingerprint_hex in message
    assert V1.fingerprint_hex in message


def test_truncated_registry_header() -> None:
    assert decode_error(b"\x00\x00\x01") == (
        "truncated: need 5 bytes of schema-registry header, got 3"
    )


def test_registry_framing_without_a_registry() -> None:
    message = decode_error(b"\x00\x00\x00\x00\x07body")
    assert "schema id 7" in message
    assert "kafka.schema_registry_url" in message


def test_unknown_schema_id() -> None:
    codec = request_codec(NO_REGISTRY, TOPIC, registry=mock_registry())
    assert decode_error(b"\x00\x00\x00\x30\x39", codec) == "unknown schema-registry schema id 12345"


def test_non_avro_schema_in_registry() -> None:
    registry = mock_registry()
    json_id = registry.register_schema("other-value", Schema('{"type": "object"}', "JSON"))
    codec = request_codec(NO_REGISTRY, TOPIC, registry=registry)
    message = decode_error(b"\x00" + json_id.to_bytes(4, "big"), codec)
    assert message == f"schema id {json_id} is a JSON schema, not Avro"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_registry_is_transient_not_a_decode_error() -> None:
    # A real client against a port nobody listens on: connection refused, no retries.
    registry = SchemaRegistryClient({"url": f"http://127.0.0.1:{free_port()}", "max.retries": 0})
    codec = request_codec(NO_REGISTRY, TOPIC, registry=registry)
    with pytest.raises(SchemaRegistryUnavailable, match="looking up schema id 3") as caught:
        codec.decode(b"\x00\x00\x00\x00\x03")
    assert isinstance(caught.value, TransientError)
    assert not isinstance(caught.value, DecodeError)
    with pytest.raises(SchemaRegistryUnavailable, match="registering subject"):
        codec.encode(a_request())
    with pytest.raises(SchemaRegistryUnavailable, match="registering subject"):
        codec.prepare()  # what a worker calls at start-up


def test_prepare_registers_once_so_encode_never_waits_on_the_registry() -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://prepare"})
    codec = result_codec(NO_REGISTRY, "results", registry=registry)
    codec.prepare()
    assert registry.get_subjects() == ["results-value"]
    result = GenerationResult("r-1", "SUCCEEDED", WorkerIdentity("w", "h"))
    assert codec.decode(codec.encode(result)) == result
    result_codec(NO_REGISTRY, "results").prepare()  # single-object framing: nothing to do


def test_result_bytes_are_the_wrong_record_type_for_the_request_codec() -> None:
    result = GenerationResult("r-1", "SUCCEEDED", WorkerIdentity("w", "h"))
    data = result_codec(NO_REGISTRY, "results").encode(result)
    assert decode_error(data) == (
        "wrong record type: GenerationResult.avsc is dev.streamgen.GenerationResult, "
        "expected dev.streamgen.GenerationRequest"
    )
    registry = mock_registry()
    registry_data = result_codec(NO_REGISTRY, "results", registry=registry).encode(result)
    message = decode_error(registry_data, request_codec(NO_REGISTRY, TOPIC, registry=registry))
    assert message.startswith("wrong record type: schema id 1 is dev.streamgen.GenerationResult")


def test_truncated_body() -> None:
    data = request_codec(NO_REGISTRY, TOPIC).encode(a_request())
    message = decode_error(data[:-5])
    assert message.startswith("truncated or corrupt dev.streamgen.GenerationRequest body")
    assert "GenerationRequest.avsc" in message


def test_trailing_bytes_after_the_record() -> None:
    data = request_codec(NO_REGISTRY, TOPIC).encode(a_request())
    assert decode_error(data + b"\x00\x00").startswith(
        "2 trailing bytes after the dev.streamgen.GenerationRequest record"
    )


def test_corrupt_enum_index() -> None:
    # request_id "" , prompt "", negative_prompt "", model "", then task enum index 9 (zigzag 18)
    data = b"\xc3\x01" + CURRENT.fingerprint + b"\x00\x00\x00\x00\x12"
    assert "truncated or corrupt" in decode_error(data)


def test_invalid_utf8_in_a_string() -> None:
    data = b"\xc3\x01" + CURRENT.fingerprint + b"\x04\xff\xfe"
    assert "UnicodeDecodeError" in decode_error(data)


def assert_request_or_decode_error(codec: AvroCodec[GenerationRequest], data: bytes) -> None:
    """Anything but a request or a DecodeError (another exception type) fails the test."""
    try:
        value = codec.decode(data)
    except DecodeError:
        return
    assert isinstance(value, GenerationRequest)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    assert_request_or_decode_error(request_codec(NO_REGISTRY, TOPIC), data)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(framing=st.sampled_from(["current", "v1", "registry"]), body=st.binary(max_size=200))
def test_any_body_behind_a_valid_header_decodes_or_raises_decode_error(
    registry: SchemaRegistryClient, framing: str, body: bytes
) -> None:
    schema_id = registry.get_latest_version(f"{TOPIC}-value").schema_id
    assert schema_id is not None
    header = {
        "current": b"\xc3\x01" + CURRENT.fingerprint,
        "v1": b"\xc3\x01" + V1.fingerprint,
        "registry": b"\x00" + schema_id.to_bytes(4, "big"),
    }[framing]
    assert_request_or_decode_error(
        request_codec(NO_REGISTRY, TOPIC, registry=registry), header + body
    )


# -- encode errors ----------------------------------------------------------------------------


def test_naive_datetime_is_refused_on_encode() -> None:
    codec = request_codec(NO_REGISTRY, TOPIC)
    with pytest.raises(EncodeError, match=r"GenerationRequest.deadline is a naive datetime"):
        codec.encode(a_request(deadline=datetime(2030, 1, 1)))


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"width": 2**31}, "width"), ({"seed": 2**63}, "seed"), ({"metadata": {"k": 1}}, "metadata")],
)
def test_values_outside_the_schema_are_refused_on_encode(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(EncodeError, match=field):
        AvroCodec(REQUEST_CONTRACT, topic=TOPIC).encode(a_request(**changes))


@given(results())
def test_result_record_is_the_dataclass_fields_with_lists_for_images_and_adapters(
    result: GenerationResult,
) -> None:
    # to_record is written field by field for speed; asdict is the plain statement of it.
    expected = dataclasses.asdict(result)
    expected["images"] = list(expected["images"])
    expected["adapters"] = list(expected["adapters"])
    assert result.to_record() == expected


# Nested records as the codec sees them: dicts, lists and tuples of scalars and aware datetimes.
AWARE = datetime(2030, 1, 1, tzinfo=UTC)
NESTED = st.recursive(
    st.none() | st.integers() | st.text(max_size=5) | st.just(AWARE),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(NESTED)
def test_no_naive_datetime_names_no_field(value: Any) -> None:
    assert _naive_datetime_field(value) == ""


KEYS = st.text(min_size=1, max_size=5)


@given(
    record=st.dictionaries(KEYS, NESTED, max_size=3),
    first=KEYS,
    steps=st.lists(KEYS | st.integers(0, 2), max_size=3),
)
def test_a_naive_datetime_is_named_by_its_path(
    record: dict[str, Any], first: str, steps: list[str | int]
) -> None:
    # Plant a naive datetime under ``first`` and then ``steps`` (a str: a dict key; an int: a
    # list index, after aware datetimes), ahead of everything else so it is the first found.
    planted: Any = datetime(2030, 1, 1)
    for step in reversed(steps):
        planted = [AWARE] * step + [planted] if isinstance(step, int) else {step: planted}
    record = {first: planted, **{k: v for k, v in record.items() if k != first}}
    path = first + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)
    assert _naive_datetime_field(record) == path


def test_registered_schema_is_the_full_current_schema() -> None:
    registry = mock_registry()
    request_codec(NO_REGISTRY, TOPIC, registry=registry).encode(a_request())
    registered = registry.get_latest_version(f"{TOPIC}-value").schema.schema_str
    assert registered is not None
    assert json.loads(registered) == json.loads(CURRENT.text)


def test_encode_error_names_the_field_value_and_expected_types() -> None:
    with pytest.raises(EncodeError) as caught:
        request_codec(NO_REGISTRY, TOPIC).encode(a_request(seed=2**63))
    assert str(caught.value) == (
        "GenerationRequest does not fit its schema: seed is 9223372036854775808, not null | long"
    )
