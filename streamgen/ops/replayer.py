"""Send dead letters back to a requests topic, once, with progress kept in a consumer group.

The run is bounded: it reads each dead-letter partition from the replay group's committed
offset up to the log end seen at start. Progress is committed in chunks, and a chunk's offsets
are committed only after every record re-published from it was acknowledged by the broker, so
a crash replays at most one chunk again and a second run replays nothing twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streamgen.contracts.codec import request_codec
from streamgen.errors import DecodeError, StreamgenError
from streamgen.ops.replay import DeadLetterView, Pacer, ReplayFilter, replay_headers
from streamgen.settings import Settings

__all__ = ["DEFAULT_REPLAY_GROUP", "ReplayError", "ReplaySummary", "Replayer"]

log = logging.getLogger(__name__)

DEFAULT_REPLAY_GROUP = "streamgen-replay"
CHUNK = 200  # records examined between commits: bounds what a crash replays again
READ_IDLE_TIMEOUT_S = 10.0  # no record for this long while short of the end: give up reading
FLUSH_TIMEOUT_S = 30.0


class ReplayError(StreamgenError):
    code = "REPLAY_FAILED"


@dataclass
class ReplaySummary:
    examined: int = 0
    matched: int = 0
    replayed: int = 0
    skipped_max_replays: int = 0
    skipped_no_topic: int = 0
    would_replay: list[DeadLetterView] = field(default_factory=list)  # dry run only


class Replayer:
    def __init__(self, settings: Settings, *, group: str = DEFAULT_REPLAY_GROUP) -> None:
        base: dict[str, Any] = {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            **settings.kafka.client_config,
        }
        self._topic = settings.topics.dead_letter
        self._group = group
        self._consumer_config = {
            **base,
            "group.id": group,
            "client.id": f"streamgen-replay-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
        self._producer_config = {
            **base,
            "enable.idempotence": True,
            "acks": "all",
            "client.id": f"streamgen-replay-{uuid.uuid4().hex[:6]}",
        }
        self._requests = request_codec(settings.kafka, settings.topics.requests)
        self._failures: list[str] = []  # delivery errors, filled by the producer's callback

    def run(
        self,
        selection: ReplayFilter,
        *,
        to_topic: str | None = None,
        max_replays: int = 3,
        rate: float | None = None,
        dry_run: bool = False,
        from_beginning: bool = False,
        progress: Callable[[int, int], None] = lambda done, total: None,
    ) -> ReplaySummary:
        """Replay what ``selection`` matches; ``progress(examined, total)`` after each record."""
        consumer = Consumer(self._consumer_config)
        producer = None if dry_run else Producer(self._producer_config)
        pacer = Pacer(rate)
        summary = ReplaySummary()
        try:
            starts, ends = self._bounds(consumer, from_beginning)
            total = sum(max(ends[p] - starts[p], 0) for p in starts)
            pending = {p for p in starts if ends[p] > starts[p]}
            consumer.assign([TopicPartition(self._topic, p, starts[p]) for p in pending])
            examined: dict[int, int] = {}  # partition -> next offset to commit
            since_commit = 0
            last_record = time.monotonic()
            while pending:
                message = consumer.poll(0.5)
                if message is None:
                    if time.monotonic() - last_record > READ_IDLE_TIMEOUT_S:
                        raise ReplayError(
                            f"no record from {self._topic} for {READ_IDLE_TIMEOUT_S:.0f}s while "
                            f"partitions {sorted(pending)} were short of their end"
                        )
                    continue
                last_record = time.monotonic()
                partition, offset = message.partition() or 0, message.offset() or 0
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise ReplayError(f"reading {self._topic}[{partition}]: {error.str()}")
                    # Control records take offsets too; EOF is the reliable "reached the end".
                    if offset >= ends[partition]:
                        pending.discard(partition)
                    continue
                if partition not in pending or offset >= ends[partition]:
                    continue
                self._one(message, selection, to_topic, max_replays, pacer, producer, summary)
                examined[partition] = offset + 1
                summary.examined += 1
                since_commit += 1
                progress(summary.examined, total)
                if offset + 1 >= ends[partition]:
                    pending.discard(partition)
                if since_commit >= CHUNK and producer is not None:
                    self._commit(consumer, producer, examined)
                    since_commit = 0
            if producer is not None:
                self._commit(consumer, producer, examined)
        finally:
            consumer.close()
        return summary

    def _bounds(
        self, consumer: Consumer, from_beginning: bool
    ) -> tuple[dict[int, int], dict[int, int]]:
        metadata = consumer.list_topics(self._topic, timeout=15)
        found = metadata.topics.get(self._topic)
        if found is None or found.error is not None:
            raise ReplayError(f"dead-letter topic {self._topic!r} not found")
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        committed = {
            tp.partition: tp.offset
            for tp in consumer.committed(
                [TopicPartition(self._topic, p) for p in found.partitions], timeout=15
            )
        }
        for p in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=15)
            done = committed.get(p, -1)
            starts[p] = low if from_beginning or done < 0 else max(done, low)
            ends[p] = high
        return starts, ends

    def _one(
        self,
        message: Any,
        selection: ReplayFilter,
        to_topic: str | None,
        max_replays: int,
        pacer: Pacer,
        producer: Producer | None,
        summary: ReplaySummary,
    ) -> None:
        headers = message.headers() or []
        model = self._model(message.value()) if selection.models else None
        letter = DeadLetterView.from_record(
            partition=message.partition(),
            offset=message.offset(),
            timestamp_ms=message.timestamp()[1],
            headers=headers,
            model=model,
        )
        if not selection.matches(letter):
            return
        summary.matched += 1
        who = letter.request_id or f"{self._topic}[{letter.dlq_partition}]@{letter.dlq_offset}"
        if letter.replay_count >= max_replays:
            log.warning(
                "skipping %s: already replayed %d times (--max-replays %d); last error %s: %s",
                who,
                letter.replay_count,
                max_replays,
                letter.code,
                letter.message,
            )
            summary.skipped_max_replays += 1
            return
        target = to_topic or letter.original_topic
        if not target:
            log.warning("skipping %s: no original topic header; pass --to TOPIC", who)
            summary.skipped_no_topic += 1
            return
        if producer is None:
            summary.would_replay.append(letter)
            return
        out: list[tuple[str, str | bytes | None]] = [
            *replay_headers(headers, letter, int(time.time() * 1000))
        ]
        pacer.wait()
        producer.produce(
            target,
            key=message.key(),
            value=message.value(),
            headers=out,
            on_delivery=self._delivered,
        )
        producer.poll(0)
        summary.replayed += 1

    def _model(self, value: bytes | None) -> str | None:
        try:
            return self._requests.decode(value).model
        except DecodeError:
            return None

    def _delivered(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self._failures.append(f"{message.topic()}: {error.str()}")

    def _commit(self, consumer: Consumer, producer: Producer, examined: dict[int, int]) -> None:
        # 1. Every re-published record must be acknowledged first: committing before would
        #    lose the dead letters whose replay the broker never took.
        left = producer.flush(FLUSH_TIMEOUT_S)
        if left or self._failures:
            reason = self._failures[0] if self._failures else f"{left} records unacknowledged"
            raise ReplayError(f"re-publishing failed, progress not committed: {reason}")
        # 2. Only then record how far we got, so a second run starts after these records.
        if examined:
            offsets = [TopicPartition(self._topic, p, o) for p, o in examined.items()]
            for tp in consumer.commit(offsets=offsets, asynchronous=False) or []:
                if tp.error:
                    raise ReplayError(f"committing replay progress of {tp.partition}: {tp.error}")
