"""Send dead letters back to a requests topic, once, with progress kept in a consumer group.

The run is bounded: it reads each dead-letter partition from the replay group's committed
offset up to the log end seen at start. Progress is committed in chunks, and a chunk's offsets
are committed only after every record re-published from it was acknowledged by the broker, so
a crash replays at most one chunk again and a second run replays nothing twice.

A claim-checked dead letter (its bytes too large for the topic when it failed) is followed to
the object store (:mod:`streamgen.ops.replay_claims`): the original key, value and headers are
read back, checked against their sha256, and re-published exactly. One whose object is gone is
skipped and said so.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streamgen.contracts.codec import request_codec
from streamgen.contracts.dead_letter import read_claim_check, replay_headers
from streamgen.errors import DecodeError, StoreUnavailable, StreamgenError
from streamgen.kafka_config import admin_config, consumer_config, producer_config
from streamgen.kafka_metadata import MetadataProbe, coordinator_not_ready
from streamgen.ops.replay_claims import ClaimedRecords, ClaimMissing, Original
from streamgen.ops.replay_rules import DeadLetterView, Pacer, ReplayFilter
from streamgen.settings import Settings

__all__ = ["DEFAULT_REPLAY_GROUP", "ReplayError", "ReplaySummary", "Replayer"]

log = logging.getLogger(__name__)

DEFAULT_REPLAY_GROUP = "streamgen-replay"
CHUNK = 200  # records examined between commits: bounds what a crash replays again
READ_IDLE_TIMEOUT_S = 10.0  # no record for this long while short of the end: give up reading
FLUSH_TIMEOUT_S = 30.0
# A claim-checked original is larger than the worker's producer allowed; the broker's limit
# for the target topic is the one that decides, so the replay producer allows up to this.
REPLAY_MESSAGE_MAX_BYTES = 100 * 1024 * 1024


class ReplayError(StreamgenError):
    code = "REPLAY_FAILED"


@dataclass
class ReplaySummary:
    examined: int = 0
    matched: int = 0
    replayed: int = 0
    skipped_max_replays: int = 0
    skipped_no_topic: int = 0
    skipped_missing_claim: int = 0  # claim-checked, but the object is gone from the store
    would_replay: list[DeadLetterView] = field(default_factory=list)  # dry run only


class Replayer:
    def __init__(self, settings: Settings, *, group: str = DEFAULT_REPLAY_GROUP) -> None:
        self._topic = settings.topics.dead_letter
        self._group = group
        self._admin_config = admin_config(settings.kafka)
        self._consumer_config = consumer_config(
            settings.kafka,
            group,
            required={
                "client.id": f"streamgen-replay-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            },
        )
        self._producer_config = producer_config(
            settings.kafka,
            defaults={"message.max.bytes": REPLAY_MESSAGE_MAX_BYTES},
            required={
                "enable.idempotence": True,
                "acks": "all",
                "client.id": f"streamgen-replay-{uuid.uuid4().hex[:6]}",
            },
        )
        self._requests = request_codec(settings.kafka, settings.topics.requests)
        self._claims = ClaimedRecords(settings.store)
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
        # The first look at the broker, before any other client exists: a refused login is
        # then said once, without those clients' own failed logins beside it.
        partitions = self._partitions()
        consumer = Consumer(self._consumer_config)
        producer = None if dry_run else Producer(self._producer_config)
        pacer = Pacer(rate)
        summary = ReplaySummary()
        try:
            starts, ends = self._bounds(consumer, partitions, from_beginning)
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

    def _partitions(self) -> list[int]:
        """The dead-letter topic's partitions; ConfigError at once for a refused login."""
        try:
            metadata = MetadataProbe(self._admin_config).list_topics(self._topic, 15)
        except KafkaException as exc:
            # Unreachable (the error says why); a refused login was a ConfigError already.
            raise ReplayError(
                f"no answer from Kafka ({exc.args[0].str()}); check kafka.bootstrap_servers "
                "and the login in kafka.client_config"
            ) from exc
        found = metadata.topics.get(self._topic)
        if found is None or found.error is not None:
            reason = f" ({found.error.str()})" if found is not None and found.error else ""
            raise ReplayError(f"dead-letter topic {self._topic!r} not found{reason}")
        return sorted(found.partitions)

    def _bounds(
        self, consumer: Consumer, partitions: list[int], from_beginning: bool
    ) -> tuple[dict[int, int], dict[int, int]]:
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        try:
            answer = committed_offsets(
                consumer, [TopicPartition(self._topic, p) for p in partitions], 15.0
            )
        except KafkaException as exc:
            # A broker with ACLs times this out when the group is not granted.
            raise ReplayError(
                f"cannot read the committed offsets of group {self._group!r} "
                f"({exc.args[0].str()}); its user needs Read on the group and on "
                f"{self._topic!r} (README: Security)"
            ) from exc
        committed = {tp.partition: tp.offset for tp in answer}
        for p in partitions:
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
        claimed = read_claim_check(headers) is not None
        try:
            # Read and checked in a dry run too: a claim object gone from the store (or no
            # longer matching its sha256) is then reported as the real run would report it.
            original = (
                self._claims.original(message)
                if claimed
                else Original(message.key(), message.value(), headers)
            )
        except ClaimMissing as exc:
            where = f"{self._topic}[{message.partition()}]@{message.offset()}"
            log.error("cannot replay %s: its claim-checked %s", where, exc)
            summary.skipped_missing_claim += 1
            return
        except StoreUnavailable as exc:
            # Transient: stop before committing, so a later run tries this record again.
            raise ReplayError(str(exc)) from exc
        model = self._model(original.value) if selection.models else None
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
        why = letter.reason
        who = why.request_id or f"{self._topic}[{letter.dlq_partition}]@{letter.dlq_offset}"
        if letter.replay_count >= max_replays:
            log.warning(
                "skipping %s: already replayed %d times (--max-replays %d); last error %s: %s",
                who,
                letter.replay_count,
                max_replays,
                why.code,
                why.message,
            )
            summary.skipped_max_replays += 1
            return
        target = to_topic or why.topic
        if not target:
            log.warning("skipping %s: no original topic header; pass --to TOPIC", who)
            summary.skipped_no_topic += 1
            return
        if producer is None:
            summary.would_replay.append(letter)
            return
        out: list[tuple[str, str | bytes | None]] = [
            *replay_headers(
                original.headers,
                source=(letter.dlq_partition, letter.dlq_offset),
                attempts=why.attempts,
                now_ms=int(time.time() * 1000),
            )
        ]
        pacer.wait()
        producer.produce(
            target,
            key=original.key,
            value=original.value,
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


def committed_offsets(
    consumer: Any,
    partitions: list[TopicPartition],
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[TopicPartition]:
    """``consumer.committed`` that waits out a coordinator that is not ready yet, up to
    ``timeout`` seconds in all; any other error, or the same one past the deadline, is raised."""
    deadline = clock() + timeout
    while True:
        try:
            answer: list[TopicPartition] = consumer.committed(
                partitions, timeout=max(deadline - clock(), 0.1)
            )
            return answer
        except KafkaException as exc:
            if not coordinator_not_ready(exc) or clock() + 0.2 > deadline:
                raise
            sleep(0.2)
