"""Incremental readers of the topics the fleet writes: results and dead letters.

Each reader only appends, so "what had been read at instant T" is a prefix of its list: the
commit sampler records prefix lengths and the oracle judges each sample against that prefix.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streamgen.contracts.codec import result_codec
from streamgen.contracts.dead_letter import H_OFFSET, H_PARTITION, H_REQUEST_ID, H_TOPIC, header_map
from streamgen.contracts.result import GenerationResult
from streamgen.settings import Settings

__all__ = ["DeadLetter", "FleetOutputs", "TopicFollower"]


class TopicFollower:
    """Reads a topic from the beginning, a little more on every ``read_to_end``."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"chaos-follow-{uuid.uuid4().hex}",  # assigned, never committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        described = self._consumer.list_topics(topic, timeout=10).topics[topic]
        self._positions = dict.fromkeys(described.partitions, 0)
        self._consumer.assign([TopicPartition(topic, p, 0) for p in self._positions])

    def read_to_end(self, timeout: float = 10.0) -> int:
        """Read up to the end offsets the topic has now; return how many records are known.

        Raises RuntimeError when the broker cannot say where the end is (it is down).
        """
        with self._lock:
            deadline = time.monotonic() + timeout
            ends = self._end_offsets(deadline)
            while any(self._positions[p] < ends[p] for p in ends):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.topic}: end offsets {ends} not reached")
                message = self._consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                partition = message.partition() or 0
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._positions[partition] = message.offset() or 0
                        continue
                    raise RuntimeError(f"{self.topic}: {error.str()}")
                self.messages.append(message)
                self._positions[partition] = (message.offset() or 0) + 1
            return len(self.messages)

    def _end_offsets(self, deadline: float) -> dict[int, int]:
        # A fresh topic is still electing its leader, a restarted broker re-electing: retry.
        while True:
            try:
                return {
                    p: self._consumer.get_watermark_offsets(
                        TopicPartition(self.topic, p), timeout=max(deadline - time.monotonic(), 1)
                    )[1]
                    for p in self._positions
                }
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        with self._lock:
            self._consumer.close()


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    headers: dict[str, str]

    @property
    def request_id(self) -> str:
        return self.headers.get(H_REQUEST_ID, "")

    @property
    def stage(self) -> str:
        return self.headers.get("streamgen.error.stage", "")

    def position(self, requests_topic: str) -> tuple[int, int] | None:
        if self.headers.get(H_TOPIC) != requests_topic:
            return None
        return int(self.headers[H_PARTITION]), int(self.headers[H_OFFSET])


class FleetOutputs:
    """The results and dead-letter topics of one test, decoded."""

    def __init__(self, settings: Settings) -> None:
        servers = settings.kafka.bootstrap_servers
        self._results = TopicFollower(servers, settings.topics.results)
        self._dead = TopicFollower(servers, settings.topics.dead_letter)
        self._decode = result_codec(settings.kafka, settings.topics.results).decode
        self._decoded: list[GenerationResult] = []

    def refresh(self, timeout: float = 10.0) -> tuple[int, int]:
        """Read both topics to their current ends; return (results, dead letters) known."""
        return self._results.read_to_end(timeout), self._dead.read_to_end(timeout)

    def results(self, upto: int | None = None) -> list[GenerationResult]:
        messages = self._results.messages
        while len(self._decoded) < len(messages):
            self._decoded.append(self._decode(messages[len(self._decoded)].value()))
        return self._decoded[:upto]

    def dead_letters(self, upto: int | None = None) -> list[DeadLetter]:
        return [
            DeadLetter(m.key(), header_map(m.headers()))  # type: ignore[arg-type]
            for m in self._dead.messages[:upto]
        ]

    def close(self) -> None:
        self._results.close()
        self._dead.close()

    def __enter__(self) -> FleetOutputs:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
