import pytest

from streamgen.contracts.request import GenerationRequest
from streamgen.errors import DecodeError, InvalidRequest, TransientError
from streamgen.worker.intake import Intake, Rejected
from streamgen.worker.work_item import SourceRecord


def record(value: bytes | None, key: bytes | None = b"req-1") -> SourceRecord:
    return SourceRecord("requests", 0, 7, key, value, (), 1_700_000_000_000)


def decode(value: bytes) -> GenerationRequest:
    if value == b"registry-down":
        raise TransientError("schema registry unreachable")
    if not value.startswith(b"ok:"):
        raise DecodeError(f"unknown framing byte {value[:1]!r}")
    return GenerationRequest(request_id="req-1", prompt=value[3:].decode())


def validate(request: GenerationRequest) -> GenerationRequest:
    if not request.prompt:
        raise InvalidRequest("prompt", request.prompt, "must not be empty")
    return request


intake = Intake(decode=decode, validate=validate)


def test_valid_record_is_admitted() -> None:
    assert intake.admit(record(b"ok:a cat")).prompt == "a cat"


def test_invalid_request_is_rejected_with_the_decoded_request() -> None:
    with pytest.raises(Rejected) as info:
        intake.admit(record(b"ok:"))
    assert isinstance(info.value.error, InvalidRequest)
    assert info.value.request is not None and info.value.request.request_id == "req-1"


@pytest.mark.parametrize(
    ("key", "expected_id"),
    [(b"req-1", "req-1"), (None, None), (b"\xff\xfe", None), (b"has space", None)],
)
def test_undecodable_record_names_its_request_by_key_when_it_can(
    key: bytes | None, expected_id: str | None
) -> None:
    with pytest.raises(Rejected) as info:
        intake.admit(record(b"\x07garbage", key=key))
    assert isinstance(info.value.error, DecodeError)
    got = info.value.request.request_id if info.value.request else None
    assert got == expected_id


def test_tombstone_is_a_decode_error_naming_the_record() -> None:
    with pytest.raises(Rejected, match=r"requests/0@7 has no value"):
        intake.admit(record(None))


def test_transient_decode_failure_is_not_a_rejection() -> None:
    with pytest.raises(TransientError):
        intake.admit(record(b"registry-down"))
