"""Every librdkafka error has one disposition: fatal, rejected (a form that fits), or retry."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from streamgen.worker.produce_errors import ProduceFailure, classify_produce_error


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError._BAD_MSG,
        KafkaError._INVALID_ARG,
    ],
)
def test_errors_about_the_record_reject_it(code: int) -> None:
    assert classify_produce_error(KafkaError(code)) is ProduceFailure.REJECTED


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.REQUEST_TIMED_OUT,
        # Gone after a good start: transient and retried (DESIGN invariant 10).
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    ],
)
def test_infrastructure_errors_are_retried(code: int) -> None:
    assert classify_produce_error(KafkaError(code)) is ProduceFailure.RETRY


def test_a_fatal_error_is_fatal_whatever_its_code() -> None:
    for code in (KafkaError._FATAL, KafkaError.MSG_SIZE_TOO_LARGE, KafkaError._MSG_TIMED_OUT):
        assert classify_produce_error(KafkaError(code, fatal=True)) is ProduceFailure.FATAL
