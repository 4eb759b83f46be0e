"""The start-up size check: one line when the producer's and the topics' limits disagree."""

from __future__ import annotations

from streamgen.worker.size_limits import size_limits_disagreement


def test_agreeing_limits_say_nothing() -> None:
    assert size_limits_disagreement(1_048_588, {"r": 1_048_588, "d": 1_048_588}) is None
    assert size_limits_disagreement(1_000_000, {}) is None


def test_a_producer_below_the_topics_names_the_setting_that_would_publish_records_whole() -> None:
    line = size_limits_disagreement(1_000_000, {"results": 1_048_588, "dead": 1_048_588})
    assert line is not None
    assert "producer message.max.bytes=1000000" in line
    assert "dead max.message.bytes=1048588" in line and "results max.message.bytes" in line
    assert "message.max.bytes=1048588" in line.split(":", 2)[2]


def test_a_producer_above_a_topic_says_records_are_refused_and_what_to_change() -> None:
    line = size_limits_disagreement(2_000_000, {"results": 2_000_000, "dead": 500_000})
    assert line is not None and "refused by the broker" in line
    assert "message.max.bytes=500000" in line and "to 2000000" in line


def test_a_topic_too_small_even_for_a_claim_checked_record_is_called_out() -> None:
    line = size_limits_disagreement(1_000_000, {"dead": 10_000})
    assert line is not None and "even a claim-checked record may not fit" in line
