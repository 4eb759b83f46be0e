"""The share worker's last acknowledgements: a refusal the broker answers is counted, not
ignored, so a stop whose durable work will be redone elsewhere does not report a clean drain."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from streamgen.telemetry.share_metrics import ShareMetrics
from streamgen.worker.share_close import refused_at_close


class Answers:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.timeouts: list[float] = []

    def commit_sync(self, timeout: float) -> Any:
        self.timeouts.append(timeout)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def refused(answer: Any) -> tuple[int, float | None]:
    registry = CollectorRegistry()
    count = refused_at_close(Answers(answer), ShareMetrics(registry), 5.0)
    return count, registry.get_sample_value("streamgen_share_ack_failures_total")


def test_every_partition_accepted_is_a_clean_stop() -> None:
    assert refused({TopicPartition("t", 0): None, TopicPartition("t", 1): None}) == (0, 0.0)
    assert refused({}) == (0, 0.0)  # nothing was pending


def test_each_refused_partition_counts(caplog: pytest.LogCaptureFixture) -> None:
    lock_gone = KafkaException(KafkaError(KafkaError._STATE, "INVALID_RECORD_STATE"))
    answer = {TopicPartition("t", 0): None, TopicPartition("t", 2): lock_gone}
    assert refused(answer) == (1, 1.0)
    assert "t[2] refused" in caplog.text and "redone" in caplog.text


def test_no_answer_at_all_is_not_clean_either() -> None:
    assert refused(KafkaException(KafkaError(KafkaError._TIMED_OUT, "no answer"))) == (1, 1.0)
