"""Against the real broker: the loop's poll hands over a lone record without waiting out its
timeout (librdkafka's batch consume would wait the whole timeout for ``limit`` records).

The timeout given is longer than pytest's own per-test timeout (pyproject: 600 s), so a poll
that waited it out fails the test by that timeout: no wall-clock bound is asserted here.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer

from streamgen.settings import Settings
from streamgen.worker.clients import consume_promptly

pytestmark = pytest.mark.integration

LONGER_THAN_THE_TEST_MAY_RUN_S = 900.0


def test_a_lone_record_is_handed_over_at_once(stack_settings: Settings) -> None:
    servers = stack_settings.kafka.bootstrap_servers
    topic = stack_settings.topics.requests
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"promptly-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        # Joined and fetching an empty topic: nothing yet, in a short wait.
        while not consumer.assignment():
            assert consume_promptly(consumer, 500, 0.2) == []
        producer = Producer({"bootstrap.servers": servers})
        producer.produce(topic, key=b"lone", value=b"record", partition=1)
        assert producer.flush(30) == 0
        got = consume_promptly(consumer, 500, LONGER_THAN_THE_TEST_MAY_RUN_S)
        records = [m for m in got if m.error() is None]
        assert [(m.key(), m.value()) for m in records] == [(b"lone", b"record")]
    finally:
        consumer.close()
