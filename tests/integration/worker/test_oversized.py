"""A record too large to dead-letter as it is stops nothing (DESIGN invariant 6): its dead
letter goes out claim-checked, the original bytes kept in the object store, and
``streamgen replay`` sends those exact bytes back."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid

import pytest
from confluent_kafka import Producer

from streamgen.contracts import dead_letter as dl
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.ops.replay_rules import ReplayFilter
from streamgen.ops.replay_run import Replayer
from streamgen.settings import Settings
from streamgen.store import open_store
from tests.integration.worker.conftest import (
    all_committed,
    make_request,
    read_dead_letters,
    read_results,
    wait_until,
    worker_thread,
)
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

# Under the local broker's limit (1,048,588 bytes) but over the worker producer's default
# message.max.bytes (1,000,000), before the dead-letter headers are even added.
HUGE_VALUE_BYTES = 1_040_000


def test_an_oversized_garbage_record_is_claim_checked_and_replayed_exactly(
    worker_settings: Settings,
) -> None:
    settings = worker_settings
    codec = request_codec(settings.kafka, settings.topics.requests)
    before, after = make_request(0), make_request(1)
    huge_key = f"huge-{uuid.uuid4().hex[:8]}".encode()
    huge_value = os.urandom(HUGE_VALUE_BYTES)
    huge_headers = [("app.trace", b"trace-1"), ("app.empty", b"")]
    # Everything on one partition: the good record behind the huge one must not wait on it.
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "acks": "all",
            "message.max.bytes": 2_000_000,
        }
    )
    producer.produce(
        settings.topics.requests,
        key=before.request_id.encode(),
        value=codec.encode(before),
        partition=0,
    )
    producer.produce(
        settings.topics.requests, key=huge_key, value=huge_value, headers=huge_headers, partition=0
    )
    producer.produce(
        settings.topics.requests,
        key=after.request_id.encode(),
        value=codec.encode(after),
        partition=0,
    )
    assert producer.flush(30) == 0

    with worker_thread(settings) as worker:
        # The key reads as a request id, so the caller also gets a FAILED result.
        results = read_results(settings, expected=3, timeout=120)
        dead = read_dead_letters(settings, expected=1, timeout=30)
        assert wait_until(lambda: all_committed(settings), 30), "offset not committed past it"
        assert worker.thread.is_alive(), "the worker stopped on the oversized record"
        assert worker.stop_and_wait() == 0

    status = {r.request_id: r.status for r in results}
    assert status == {
        before.request_id: "SUCCEEDED",
        after.request_id: "SUCCEEDED",
        huge_key.decode(): "FAILED",
    }
    [(key, value, headers)] = dead
    assert key == huge_key
    assert not value, "the value lives behind the claim check"
    assert headers[dl.H_STAGE] == "decode"
    assert headers["app.trace"] == "trace-1", "small original headers stay inline"
    claim = dl.read_claim_check([(k, v.encode()) for k, v in headers.items()])
    assert claim is not None and claim.value is not None and claim.envelope is None
    assert claim.value.size == HUGE_VALUE_BYTES
    assert claim.value.sha256 == hashlib.sha256(huge_value).hexdigest()
    stored = open_store(settings.store).get(claim.value.uri)
    assert hashlib.sha256(stored).hexdigest() == claim.value.sha256

    # Replay sends the original bytes back to the requests topic: same key, value, headers.
    ends = {m.partition(): m.offset() for m in consume_all(
        settings.kafka.bootstrap_servers, settings.topics.requests, timeout=10
    )}  # fmt: skip
    summary = Replayer(settings, group=f"replay-{uuid.uuid4().hex[:6]}").run(ReplayFilter())
    assert (summary.replayed, summary.skipped_missing_claim) == (1, 0)
    replayed = [
        m
        for m in consume_all(settings.kafka.bootstrap_servers, settings.topics.requests, timeout=10)
        if m.offset() > ends.get(m.partition(), -1)
    ]
    assert len(replayed) == 1
    [message] = replayed
    assert message.key() == huge_key
    assert message.value() == huge_value
    original = [
        (k, v or b"") for k, v in message.headers() or [] if not k.startswith(dl.REPLAY_PREFIX)
    ]
    assert original[: len(huge_headers)] == huge_headers
    assert [k for k, _ in original[len(huge_headers) :]] == [dl.H_ATTEMPT]


def test_a_result_too_large_is_published_small_with_the_full_one_claim_checked(
    worker_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = worker_settings
    codec = request_codec(settings.kafka, settings.topics.requests)
    results_codec = result_codec(settings.kafka, settings.topics.results)
    # A valid request whose metadata (copied into its result) is over the producer's limit.
    big = make_request(0, metadata={"blob": "m" * HUGE_VALUE_BYTES})
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "message.max.bytes": 2_000_000}
    )
    producer.produce(settings.topics.requests, key=big.request_id.encode(), value=codec.encode(big))
    assert producer.flush(30) == 0

    with caplog.at_level(logging.INFO), worker_thread(settings) as worker:
        messages = consume_all(
            settings.kafka.bootstrap_servers, settings.topics.results, expected=1, timeout=120
        )
        assert wait_until(lambda: all_committed(settings), 30)
        assert worker.stop_and_wait() == 0

    [message] = messages
    result = results_codec.decode(message.value())
    assert (result.request_id, result.status, len(result.images)) == (
        big.request_id,
        "SUCCEEDED",
        1,
    )
    claim = dl.read_claim_check(message.headers())
    assert claim is not None and claim.value is not None
    assert result.metadata == dl.header_map(dl.claim_check_headers(claim))
    full = results_codec.decode(open_store(settings.store).get(claim.value.uri))
    assert full.metadata == big.metadata and full.images == result.images
    # The start-up check said the producer's limit and the topics' disagree.
    assert any("record size limits disagree" in r.getMessage() for r in caplog.records)
