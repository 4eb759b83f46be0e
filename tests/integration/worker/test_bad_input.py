"""Every class of bad input ends as exactly one dead letter (+ FAILED result when the request
id is known), and the good requests of the same poll still succeed."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest

from streamgen.contracts import dead_letter as dl
from streamgen.contracts.codec import request_codec
from streamgen.settings import Settings
from tests.integration.worker.conftest import (
    all_committed,
    make_request,
    publish_raw,
    read_dead_letters,
    read_results,
    wait_until,
    worker_thread,
)

pytestmark = pytest.mark.integration


def test_each_bad_input_class_is_dead_lettered_once_and_good_ones_succeed(
    worker_settings: Settings,
) -> None:
    codec = request_codec(worker_settings.kafka, worker_settings.topics.requests)
    invalid = {
        "bad-width": make_request(10, width=65),
        "bad-steps": make_request(11, steps=0),
        "nan-guidance": make_request(12, guidance_scale=float("nan")),
        "empty-prompt": make_request(13, prompt="   "),
        "huge-prompt": make_request(14, prompt="x" * 50_000),
        "huge-image": make_request(15, width=8192, height=8192),
        "unknown-model": make_request(16, model="no-such-model"),
        "unknown-scheduler": make_request(17, scheduler="warp_drive"),
        "img2img-no-image": make_request(18, task="img2img"),
        "expired": make_request(19, deadline=datetime.now(UTC) - timedelta(minutes=1)),
    }
    good = [make_request(0), make_request(1)]
    valid_body = codec.encode(good[0])[10:]
    undecodable: dict[bytes | None, bytes] = {
        b"garbage-1": b"\x07 this is not avro at all",
        b"unknown-fingerprint": b"\xc3\x01" + struct.pack("<Q", 0xDEADBEEF) + valid_body,
        b"truncated": b"\xc3\x01\x01\x02",
        b"registry-framing": b"\x00" + struct.pack(">I", 4242) + valid_body,
        None: b"\xff\xff\xff",  # no key: too broken to carry a request id
    }
    records: list[tuple[bytes | None, bytes | None]] = [
        (r.request_id.encode(), codec.encode(r)) for r in invalid.values()
    ]
    records += list(undecodable.items())
    records += [(r.request_id.encode(), codec.encode(r)) for r in good]
    publish_raw(worker_settings, records)

    failed_ids = {r.request_id for r in invalid.values()} | {
        k.decode() for k in undecodable if k is not None
    }
    expected_results = len(failed_ids) + len(good)
    with worker_thread(worker_settings) as worker:
        results = read_results(worker_settings, expected=expected_results, timeout=120)
        dead = read_dead_letters(worker_settings, expected=len(records) - len(good))
        assert wait_until(lambda: all_committed(worker_settings), 20)
        worker.stop_and_wait()

    by_id = {r.request_id: r for r in results}
    assert len(results) == expected_results, "one result per request, no more"
    assert {r.request_id for r in good} <= {i for i, r in by_id.items() if r.status == "SUCCEEDED"}
    assert {i for i, r in by_id.items() if r.status == "FAILED"} == failed_ids
    assert len(dead) == len(records) - len(good)

    headers_by_key = {key: headers for key, _, headers in dead}
    for name, request in invalid.items():
        headers = headers_by_key[request.request_id.encode()]
        assert headers[dl.H_STAGE] == "validate", name
        assert headers[dl.H_REQUEST_ID] == request.request_id
        assert headers[dl.H_RETRYABLE] == "false"
        assert headers[dl.H_TOPIC] == worker_settings.topics.requests
        assert headers[dl.H_GROUP] == worker_settings.worker.group_id
        assert by_id[request.request_id].error is not None
    assert by_id[invalid["expired"].request_id].error.code == "DEADLINE_EXPIRED"  # type: ignore[union-attr]
    assert "width" in by_id[invalid["bad-width"].request_id].error.message  # type: ignore[union-attr]
    for key in undecodable:
        headers = headers_by_key[key]
        assert headers[dl.H_STAGE] == "decode"
        assert headers[dl.H_CLASS] == "DecodeError"
        assert int(headers[dl.H_OFFSET]) >= 0
    # The dead letter carries the original bytes unchanged.
    originals = dict(records)
    assert all(value == originals[key] for key, value, _ in dead)
