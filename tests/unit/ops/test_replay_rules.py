from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from streamgen.contracts.dead_letter import (
    ClaimCheck,
    ClaimedObject,
    DeadLetterReason,
    claim_checked_dead_letter,
    dead_letter_headers,
    header_map,
    read_dead_letter_reason,
    replay_headers,
)
from streamgen.ops.replay_rules import (
    DeadLetterView,
    Pacer,
    ReplayFilter,
    parse_offset_range,
    parse_time,
)
from streamgen.ops.replay_run import committed_offsets

WHY = DeadLetterReason(
    stage="generate",
    error_class="GenerationFailed",
    code="GENERATION_FAILED",
    message="nan",
    retryable=True,
    attempts=3,
    request_id="r1",
    topic="req",
    partition=2,
    offset=40,
    timestamp_ms=1_000,
    group_id="g",
    worker_id="w",
    failed_at_ms=5_000,
)


def view(headers: list[tuple[str, bytes]], model: str | None = "tiny") -> DeadLetterView:
    return DeadLetterView.from_record(
        partition=0, offset=7, timestamp_ms=9_000, headers=headers, model=model
    )


def replayed(headers: list[tuple[str, bytes]], now_ms: int) -> list[tuple[str, bytes]]:
    letter = view(headers)
    source = (letter.dlq_partition, letter.dlq_offset)
    return replay_headers(headers, source=source, attempts=letter.reason.attempts, now_ms=now_ms)


def test_the_reason_written_is_the_reason_read() -> None:
    headers = dead_letter_headers([("a", b"1")], WHY)
    assert read_dead_letter_reason(headers, record_timestamp_ms=9_000) == WHY
    v = view(headers)
    assert v.reason == WHY and v.replay_count == 0


def test_missing_headers_fall_back_to_the_record() -> None:
    why = view([]).reason
    assert why.failed_at_ms == 9_000 and why.partition == -1 and why.code == ""
    assert why.attempts == 0 and not why.retryable


def test_replay_headers_strip_errors_and_count_replays() -> None:
    once = replayed(dead_letter_headers([("app", b"x")], WHY), now_ms=123)
    h = header_map(once)
    assert not any(k.startswith("streamgen.error.") for k in h)
    assert h["app"] == "x"
    assert h["streamgen.replay.count"] == "1"
    assert h["streamgen.replay.at"] == "123"
    assert (h["streamgen.replay.source.partition"], h["streamgen.replay.source.offset"]) == (
        "0",
        "7",
    )
    # It fails again and is dead-lettered again: the count keeps climbing, one header each.
    twice = replayed(dead_letter_headers(once, WHY), now_ms=456)
    assert header_map(twice)["streamgen.attempt"] == "3"
    assert [k for k, _ in twice].count("streamgen.replay.count") == 1
    assert header_map(twice)["streamgen.replay.count"] == "2"


def test_empty_filter_matches_everything_and_each_criterion_narrows() -> None:
    v = view(dead_letter_headers([], WHY))
    assert ReplayFilter().matches(v)
    assert ReplayFilter(stages=frozenset({"generate"}), retryable=True).matches(v)
    assert not ReplayFilter(retryable=False).matches(v)
    assert not ReplayFilter(codes=frozenset({"DECODE_ERROR"})).matches(v)
    assert ReplayFilter(offset_range=(40, 40)).matches(v)
    assert not ReplayFilter(offset_range=(41, 50)).matches(v)
    assert ReplayFilter(since_ms=5_000, until_ms=5_001).matches(v)
    assert not ReplayFilter(until_ms=5_000).matches(v)
    assert not ReplayFilter(models=frozenset({"tiny"})).matches(view([], model=None))


def test_parse_time_relative_and_absolute() -> None:
    now = 10_000_000
    assert parse_time("30m", now_ms=now, option="--since") == now - 1_800_000
    assert parse_time("1.5h", now_ms=now, option="--since") == now - 5_400_000
    assert parse_time("1970-01-01T00:00:10Z", now_ms=now, option="--since") == 10_000
    assert parse_time("1970-01-01T00:00:10", now_ms=now, option="--since") == 10_000
    with pytest.raises(ValueError, match="--until: 'soon' is neither"):
        parse_time("soon", now_ms=now, option="--until")


def test_parse_offset_range() -> None:
    assert parse_offset_range("5-9") == (5, 9)
    assert parse_offset_range("5") == (5, 5)
    for bad in ("9-5", "a-b", "-3"):
        with pytest.raises(ValueError, match="--offset-range"):
            parse_offset_range(bad)


@given(st.floats(0.5, 1000), st.integers(2, 50))
def test_pacer_never_exceeds_the_rate(rate: float, calls: int) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = Pacer(rate, clock=lambda: now[0], sleep=sleep)
    for _ in range(calls):
        pacer.wait()
    assert now[0] >= (calls - 1) / rate - 1e-9


def test_pacer_refuses_a_zero_rate() -> None:
    with pytest.raises(ValueError, match="--rate must be > 0"):
        Pacer(0)


def test_replay_headers_strip_the_claim_check() -> None:
    claim = ClaimCheck(ClaimedObject("s3://b/k", 10, "ab"), None)
    _, _, headers = claim_checked_dead_letter(b"k", [("app", b"x")], WHY, claim)
    out = replayed(headers, now_ms=1)
    assert [k for k, _ in out][:1] == ["app"]
    assert not any(k.startswith("streamgen.claim.") for k, _ in out)


class _ComingUp:
    """A consumer whose group coordinator is still loading for the first ``busy`` asks."""

    def __init__(self, busy: int, code: int) -> None:
        self.busy = busy
        self.code = code
        self.asked = 0

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        self.asked += 1
        if self.asked <= self.busy:
            raise KafkaException(KafkaError(self.code))
        return partitions


def test_committed_offsets_wait_out_a_coordinator_that_is_still_loading() -> None:
    now = [0.0]
    consumer = _ComingUp(busy=3, code=KafkaError.NOT_COORDINATOR)
    asked = [TopicPartition("dl", 0)]
    answer = committed_offsets(
        consumer, asked, 15.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    assert answer == asked and consumer.asked == 4


def test_committed_offsets_give_up_at_the_deadline_and_on_other_errors() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    loading = _ComingUp(busy=10**6, code=KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    with pytest.raises(KafkaException):
        committed_offsets(loading, [], 2.0, clock=lambda: now[0], sleep=sleep)
    assert now[0] <= 2.0
    refused = _ComingUp(busy=1, code=KafkaError.GROUP_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        committed_offsets(refused, [], 15.0, clock=lambda: now[0], sleep=sleep)
    assert refused.asked == 1
