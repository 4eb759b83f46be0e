"""Following the cancels topic: a consumer of its own, on a thread of its own, into a CancelSet.

The consumer joins no group: it is assigned every partition of ``topics.cancels`` from the
beginning of retention and never commits, so every worker learns every cancel, and a restarted
worker reads again the cancels it needs (compaction keeps one record per request id, and
``cleanup.policy=compact,delete`` drops those past ``topics.retention_ms``). librdkafka wants a
``group.id`` all the same; the worker's own is given, and never used to join or commit.

Why a thread and not the consumer loop: reading the topic from its beginning at start can be
thousands of records, and a loop turn is 5 ms when busy; a poll of a second consumer in every
turn would add its timeout to each. Here the loop does nothing for cancels; what the thread
learns is visible at once through the CancelSet's lock.

At start the worker waits (at most ``kafka.connect_timeout_s``) until the follower has read up
to the ends the topic had when it was assigned, so that no request cancelled before the start
is generated. A cancels topic that does not exist (or may not be described) turns cancellation
off with a warning: a worker upgraded before its operator created the topic keeps serving
requests (docs/decisions.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from streamgen import kafka_config
from streamgen.settings import Settings
from streamgen.worker.cancels import CancelSet

__all__ = ["CancelConsumer", "CancelConsumerFactory", "CancelFollower", "cancel_consumer_config"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.2  # how long a cancel may wait on this thread before the set learns it
MAX_RECORDS_PER_POLL = 500


class CancelConsumer(Protocol):
    """What the follower uses of a Kafka consumer (confluent-kafka's ``Consumer``)."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]: ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int] | None: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...

    def close(self) -> object: ...


CancelConsumerFactory = Callable[[dict[str, Any]], CancelConsumer]


def cancel_consumer_config(settings: Settings, worker_id: str) -> dict[str, Any]:
    return kafka_config.consumer_config(
        settings.kafka,
        settings.worker.group_id,
        defaults={"client.id": f"{worker_id}-cancels"},
        # Never commit: the next start reads from the beginning again, by design.
        required={"enable.auto.commit": False, "enable.auto.offset.store": False},
        route_logs=True,
    )


class CancelFollower(threading.Thread):
    def __init__(
        self,
        consumer: CancelConsumer,
        topic: str,
        cancels: CancelSet,
        *,
        stopped: Callable[[float], bool],
    ) -> None:
        """``stopped(timeout)``: wait up to ``timeout`` s, True once the worker is closing."""
        super().__init__(name="streamgen-cancels", daemon=True)
        self._consumer = consumer
        self._topic = topic
        self.cancels = cancels
        self._stopped = stopped
        self._ends: dict[int, int] = {}  # partition -> end offset when assigned
        self._caught_up = threading.Event()

    def open(self, timeout: float) -> bool:
        """Assign every partition from the beginning; False (cancellation off, said once in
        the log) where the topic cannot be read."""
        try:
            found = self._consumer.list_topics(self._topic, timeout).topics.get(self._topic)
        except KafkaException as exc:  # the broker answered check_broker a moment ago
            found, why = None, f"could not be described: {exc.args[0].str()}"
        else:
            why = "does not exist"
        if found is None or found.error is not None or not found.partitions:
            why = found.error.str() if found is not None and found.error is not None else why
            log.warning(
                "cancellation is off: topics.cancels %r %s (`streamgen topics create` makes it)",
                self._topic,
                why,
            )
            self._consumer.close()
            return False
        partitions = [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in found.partitions]
        for tp in partitions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout) or (0, 0)
            if high > low:
                self._ends[tp.partition] = high
        self._consumer.assign(partitions)
        if not self._ends:
            self._caught_up.set()
        return True

    def wait_caught_up(self, timeout: float) -> bool:
        """Until every cancel that was on the topic at ``open`` is in the set (or timeout)."""
        if self._caught_up.wait(timeout):
            return True
        log.warning(
            "the cancels topic %r was not read to its end within %.0f s; serving anyway: "
            "a request cancelled before this start may still be generated",
            self._topic,
            timeout,
        )
        return False

    def run(self) -> None:
        try:
            while not self._stopped(0.0):
                for message in self._consumer.consume(MAX_RECORDS_PER_POLL, POLL_TIMEOUT_S):
                    if message.error() is not None:
                        log.warning("cancels consumer: %s", message.error())
                        continue
                    where = f"{message.topic()}/{message.partition()}@{message.offset()}"
                    self.cancels.apply(message.key(), message.value(), where)
                if not self._caught_up.is_set() and self._read_to_ends():
                    log.info("read the cancels topic to its end: %d cancel(s)", len(self.cancels))
                    self._caught_up.set()
        except Exception:  # cancels are an optimisation of GPU time, never worth the worker
            log.exception("the cancels follower failed; cancellation is off from now on")
        finally:
            self._consumer.close()

    def _read_to_ends(self) -> bool:
        assigned = [TopicPartition(self._topic, p) for p in self._ends]
        positions = {tp.partition: tp.offset for tp in self._consumer.position(assigned)}
        return all(positions.get(p, -1) >= end for p, end in self._ends.items())
