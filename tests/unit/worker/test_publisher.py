"""Publisher: each produce failure, raised by produce() or reported on delivery, is retried,
handed to the sender's fallback, or fatal — never an exception out of the consumer loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamgen.worker.backoff import Backoff
from streamgen.worker.publisher import Publisher

Deliver = Callable[[KafkaError | None, Any], None]


class FakeProducer:
    """Refuses values over ``limit`` in produce(), as librdkafka does; otherwise holds the
    record until the test says what the broker answers (``answer``, then ``poll``)."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self.produced: list[bytes | None] = []
        self.waiting: list[Deliver] = []
        self.answer: KafkaError | None = None

    def produce(self, topic: str, *, value: bytes | None, on_delivery: Deliver, **_: Any) -> None:
        if self.answer is not None and self.answer.fatal():
            raise KafkaException(self.answer)
        if value is not None and len(value) > self.limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Message too large"))
        self.produced.append(value)
        self.waiting.append(on_delivery)

    def poll(self, _timeout: float = 0.0) -> int:
        waiting, self.waiting = self.waiting, []
        for deliver in waiting:
            deliver(self.answer, None)
        return len(waiting)


@pytest.fixture
def publisher() -> tuple[Publisher, FakeProducer]:
    out = Publisher({"bootstrap.servers": "127.0.0.1:1"}, backoff=Backoff(0.001, 0.001))
    fake = FakeProducer()
    out._producer = fake  # type: ignore[assignment]
    return out, fake


def test_a_record_refused_by_produce_goes_to_the_fallback(
    publisher: tuple[Publisher, FakeProducer],
) -> None:
    out, _ = publisher
    acks: list[str] = []
    refusals: list[str] = []
    out.send("dead", b"k", b"x" * 101, [], lambda: acks.append("ack"), refusals.append)
    assert refusals == ["Message too large"] and acks == []
    assert out.in_flight == 0 and out.fatal is None


def test_a_record_refused_by_the_broker_goes_to_the_fallback(
    publisher: tuple[Publisher, FakeProducer],
) -> None:
    out, fake = publisher
    refusals: list[str] = []
    out.send("dead", b"k", b"small", [], lambda: None, refusals.append)
    fake.answer = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
    out.poll()
    assert refusals == ["Broker: Message size too large"]
    assert out.in_flight == 0


def test_a_transient_failure_is_produced_again_until_acknowledged(
    publisher: tuple[Publisher, FakeProducer],
) -> None:
    out, fake = publisher
    acks: list[str] = []
    refusals: list[str] = []
    out.send("results", b"k", b"v", [], lambda: acks.append("ack"), refusals.append)
    fake.answer = KafkaError(KafkaError._MSG_TIMED_OUT)
    out.poll()
    assert out.in_flight == 1 and acks == []
    fake.answer = None
    assert out.flush(2.0) == 0
    assert acks == ["ack"] and refusals == [] and fake.produced == [b"v", b"v"]


def test_a_refused_record_without_a_fallback_is_retried_not_dropped(
    publisher: tuple[Publisher, FakeProducer],
) -> None:
    out, fake = publisher
    out.send("dead", b"k", b"x" * 101, [], lambda: None)
    assert out.in_flight == 1 and out.fatal is None
    fake.limit = 1000  # e.g. the topic's limit raised by an operator
    assert out.flush(2.0) == 0


def test_a_fatal_error_raised_by_produce_makes_the_publisher_fatal(
    publisher: tuple[Publisher, FakeProducer],
) -> None:
    out, fake = publisher
    fake.answer = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    out.send("results", b"k", b"v", [], lambda: None, lambda _: None)
    assert out.fatal is not None and "fenced" in str(out.fatal)
