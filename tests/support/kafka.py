"""Read what really reached a topic on the test broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

__all__ = ["consume_all"]


def consume_all(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int | None = None,
    timeout: float = 30.0,
    client_config: Mapping[str, str] | None = None,
) -> list[Message]:
    """Every record of ``topic`` from the beginning, in partition order within each partition.

    With ``expected``, waits until that many records were read (or ``timeout`` passes: the
    caller's assertion on the count then fails with what did arrive). Without it, reads up to
    the end offsets the partitions had when the call began. ``client_config`` logs in to a
    secure broker.
    """
    consumer = Consumer(
        {
            **(client_config or {}),
            "bootstrap.servers": bootstrap_servers,
            # Assigned, not subscribed: no group join, no rebalance delay, no committed state.
            "group.id": f"consume-all-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        described = consumer.list_topics(topic, timeout=10).topics[topic]
        if described.error is not None:
            raise RuntimeError(f"topic {topic}: {described.error.str()}")
        partitions = sorted(described.partitions)
        ends = {p: _end_offset(consumer, TopicPartition(topic, p)) for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Message] = []
        positions = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expected is not None and len(messages) >= expected:
                break
            if expected is None and all(positions[p] >= ends[p] for p in partitions):
                break
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    # Control records (idempotence, transactions) take offsets too, so the end
                    # is known by this event, not by the last data record's offset.
                    positions[message.partition()] = message.offset() or 0
                    continue
                raise RuntimeError(f"consuming {topic}: {error.str()}")
            messages.append(message)
            positions[message.partition()] = (message.offset() or 0) + 1
        return messages
    finally:
        consumer.close()


# A topic created moments ago (each test has its own) may have no leader yet, or one the
# client's metadata does not know: the broker answers these until the election settles.
_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _end_offset(consumer: Consumer, partition: TopicPartition, timeout: float = 30.0) -> int:
    """The partition's log end offset, waiting (bounded) for its leader to be known."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(consumer.get_watermark_offsets(partition, timeout=10)[1])
        except KafkaException as exc:
            if exc.args[0].code() not in _NO_LEADER_YET or time.monotonic() > deadline:
                raise
        time.sleep(0.1)
