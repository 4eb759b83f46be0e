"""Read a consumer group's position off the broker for ``streamgen lag``.

Everything comes from the broker itself: topic metadata, earliest/latest offsets, the group's
committed offsets and members (Admin API; for a share group, its start offsets, asked with
``DescribeShareGroupOffsets``), and a bounded read of the records around those offsets. The
probe never joins the group and never commits, so running it cannot disturb the fleet it
measures.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from streamgen.contracts.codec import request_codec, result_codec
from streamgen.errors import DecodeError, StreamgenError
from streamgen.kafka_config import admin_config, consumer_config
from streamgen.kafka_metadata import MetadataProbe, coordinator_not_ready
from streamgen.kafka_protocol.link import LinkError
from streamgen.kafka_protocol.share_offsets import ShareOffsetsError, share_offsets
from streamgen.ops.lag_report import GroupLag, PartitionLag, results_rate
from streamgen.settings import Settings
from streamgen.telemetry.backlog import pixel_steps
from streamgen.worker.clients import consume_promptly

__all__ = ["LagError", "LagProbe"]

TPKey = tuple[str, int]

ADMIN_TIMEOUT_S = 15.0
# Bounded reads: a partition whose last offset is a transaction marker never yields a record
# at end-1, so reading stops at this deadline instead of hanging.
READ_TIMEOUT_S = 10.0
# How soon a group request is sent again while the coordinator is still loading.
COORDINATOR_RETRY_S = 0.25

# Imported by module: the admin package's typing does not re-export OffsetSpec.
OffsetSpec: Any = importlib.import_module("confluent_kafka.admin").OffsetSpec
OFFSET_EARLIEST = OffsetSpec.earliest()
OFFSET_LATEST = OffsetSpec.latest()


class LagError(StreamgenError):
    """The broker could not answer, or the topic or group does not exist as asked."""

    code = "LAG_PROBE_FAILED"


def _result(future: Any, what: str) -> Any:
    try:
        return future.result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        raise LagError(f"{what}: {exc.args[0]}") from exc
    except TimeoutError as exc:
        raise LagError(f"{what}: no answer from the broker in {ADMIN_TIMEOUT_S:.0f}s") from exc


def _group_result(
    ask: Callable[[], Any],
    what: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """The answer to a group request (``ask()`` sends it and returns its future), sent again
    while the group coordinator is still loading, as it is on a broker that has just started,
    for up to ADMIN_TIMEOUT_S in all. Any other error, or the same one past that, is a LagError."""
    deadline = clock() + ADMIN_TIMEOUT_S
    while True:
        try:
            return _result(ask(), what)
        except LagError as exc:
            cause = exc.__cause__
            loading = isinstance(cause, KafkaException) and coordinator_not_ready(cause)
            if not loading or clock() + COORDINATOR_RETRY_S > deadline:
                raise
        sleep(COORDINATOR_RETRY_S)


class LagProbe:
    def __init__(self, settings: Settings, *, registry: SchemaRegistryClient | None = None) -> None:
        self._settings = settings
        # The first look at the broker: a refused login is a ConfigError, said at once. The
        # admin client for offsets and groups is made after it (``_admin``), so that it never
        # prints its own failed logins beside that error.
        self._metadata = MetadataProbe(admin_config(settings.kafka))
        self._reader_config = consumer_config(
            settings.kafka,
            # Never subscribes, never commits: the group id only satisfies librdkafka.
            f"streamgen-lag-probe-{uuid.uuid4().hex[:8]}",
            required={"enable.auto.commit": False, "enable.partition.eof": False},
        )
        self._requests = request_codec(settings.kafka, settings.topics.requests, registry=registry)
        self._results = result_codec(settings.kafka, settings.topics.results, registry=registry)

    @functools.cached_property
    def _admin(self) -> AdminClient:
        return AdminClient(admin_config(self._settings.kafka))

    # -- broker reads ------------------------------------------------------------------------
    def partitions(self, topic: str) -> list[int]:
        servers = self._settings.kafka.bootstrap_servers
        try:
            metadata = self._metadata.list_topics(topic, ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            # Unreachable (the error says why); a refused login was a ConfigError already.
            raise LagError(
                f"no answer from Kafka at {servers} ({exc.args[0].str()}); check "
                "kafka.bootstrap_servers and the login in kafka.client_config"
            ) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            reason = found.error if found is not None and found.error else "no partitions"
            raise LagError(
                f"topic {topic!r} not found on {servers} ({reason}); `streamgen topics create` "
                "with the fleet's settings creates every topic they name, each lane's included"
            )
        return sorted(found.partitions)

    def watermarks(self, tps: list[TPKey]) -> dict[TPKey, tuple[int, int]]:
        """(log start, log end) per partition."""
        out: dict[TPKey, list[int]] = {tp: [0, 0] for tp in tps}
        for index, spec in ((0, OFFSET_EARLIEST), (1, OFFSET_LATEST)):
            futures = self._admin.list_offsets({TopicPartition(t, p): spec for t, p in tps})
            for tp, future in futures.items():
                answer = _result(future, f"listing offsets of {tp.topic}[{tp.partition}]")
                out[(tp.topic, tp.partition)][index] = int(answer.offset)
        return {tp: (low, high) for tp, (low, high) in out.items()}

    def committed(self, group: str, tps: list[TPKey]) -> dict[TPKey, int | None]:
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in tps])]
        answer = _group_result(
            lambda: self._admin.list_consumer_group_offsets(request)[group],
            f"reading committed offsets of group {group!r}",
        )
        out: dict[TPKey, int | None] = {}
        for tp in answer.topic_partitions:
            # librdkafka reports "no commit" as a negative sentinel (OFFSET_INVALID).
            out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return out

    def share_positions(
        self, group: str, tps: list[TPKey], marks: Mapping[TPKey, tuple[int, int]]
    ) -> dict[TPKey, int | None]:
        """A share group's position per partition: the log end less the broker's lag where it
        gives one (its start offset can stand still while later records are accepted), else
        the start offset (``streamgen.kafka_protocol.share_offsets``)."""
        try:
            found = share_offsets(self._settings.kafka, group, tps, timeout_s=ADMIN_TIMEOUT_S)
        except (ShareOffsetsError, LinkError) as exc:
            raise LagError(f"reading share group {group!r}: {exc}") from exc
        return {
            tp: at.start if at.lag is None else max(marks[tp][1] - at.lag, at.start or 0)
            for tp, at in found.items()
        }

    def owners(self, group: str) -> dict[TPKey, str]:
        description = _group_result(
            lambda: self._admin.describe_consumer_groups([group])[group],
            f"describing group {group!r}",
        )
        out: dict[TPKey, str] = {}
        for member in description.members:
            owner = f"{member.client_id}@{member.host.lstrip('/')}"
            for tp in member.assignment.topic_partitions if member.assignment else []:
                out[(tp.topic, tp.partition)] = owner
        return out

    def read(self, ranges: Mapping[TPKey, tuple[int, int]]) -> dict[TPKey, list[Any]]:
        """Records with start <= offset < end per partition (bounded by READ_TIMEOUT_S)."""
        wanted = {tp: r for tp, r in ranges.items() if r[1] > r[0]}
        out: dict[TPKey, list[Any]] = {tp: [] for tp in ranges}
        if not wanted:
            return out
        consumer = Consumer(self._reader_config)
        try:
            consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in wanted.items()])
            deadline = time.monotonic() + READ_TIMEOUT_S
            while wanted and time.monotonic() < deadline:
                for message in consume_promptly(consumer, 500, 0.5):
                    if message.error():
                        continue
                    tp = (message.topic(), message.partition())
                    offset = message.offset() or 0
                    if tp in wanted and offset < wanted[tp][1]:
                        out[tp].append(message)
                        if offset >= wanted[tp][1] - 1:
                            del wanted[tp]
        finally:
            consumer.close()
        return out

    # -- the report --------------------------------------------------------------------------
    def snapshot(
        self,
        group: str,
        topic: str,
        *,
        results_topic: str | None,
        sample: int = 100,
        now_ms: int | None = None,
    ) -> GroupLag:
        """One consistent-enough look at ``group`` on ``topic``.

        ``sample``: unprocessed requests decoded per partition for the backlog estimate (and
        the number of recent results read to measure throughput); 0 skips the estimate.
        """
        if sample < 0:
            raise LagError(f"sample must be >= 0, got {sample}")
        tps = [(topic, p) for p in self.partitions(topic)]
        marks = self.watermarks(tps)
        if self._settings.worker.mode == "share":
            # Every member reads every partition: no owner; the share position plays the commit.
            committed, owners = self.share_positions(group, tps, marks), {}
        else:
            committed, owners = self.committed(group, tps), self.owners(group)
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        rows = [
            PartitionLag(
                topic=t,
                partition=p,
                committed=committed.get((t, p)),
                log_start=marks[(t, p)][0],
                log_end=marks[(t, p)][1],
                owner=owners.get((t, p), ""),
            )
            for t, p in tps
        ]
        # The first unprocessed record gives the age; `sample` of them give the mean cost.
        unprocessed = self.read(
            {
                (r.topic, r.partition): (r.position, min(r.log_end, r.position + max(sample, 1)))
                for r in rows
            }
        )
        rows = [self._with_sample(r, unprocessed[(r.topic, r.partition)], sample) for r in rows]
        throughput, rate = (None, None)
        if results_topic and sample:
            throughput, rate = self._measure(rows, results_topic, sample, now_ms)
        return GroupLag(
            group=group,
            topic=topic,
            taken_at_ms=now_ms,
            partitions=tuple(rows),
            throughput=throughput,
            drain_rate=rate,
            drain_rate_source="results" if rate is not None else "",
        )

    def _with_sample(self, row: PartitionLag, records: list[Any], sample: int) -> PartitionLag:
        if not records:
            return row
        oldest = int(records[0].timestamp()[1])
        costs = [self._request_cost(m.value())[1] for m in records[:sample]]
        return dataclasses.replace(
            row,
            oldest_timestamp_ms=oldest if oldest > 0 else None,
            sampled=len(costs),
            sampled_pixel_steps=float(sum(costs)),
        )

    def _request_cost(self, value: bytes | None) -> tuple[str, int]:
        """(request id, pixel-steps); an undecodable record is ("", 0): the worker
        dead-letters it at once, without GPU time."""
        try:
            r = self._requests.decode(value)
        except DecodeError:
            return "", 0
        return r.request_id, pixel_steps(r.steps, r.width, r.height, r.num_images)

    def _measure(
        self, rows: list[PartitionLag], results_topic: str, sample: int, now_ms: int
    ) -> tuple[float | None, float]:
        """Throughput in pixel-steps per GPU-second and results per second, from the last
        ``sample`` results per partition of ``results_topic``.

        A result carries its size and its batch's GPU time but not its steps, so each
        SUCCEEDED result is joined by request id with the request it answers, found among the
        last ``sample`` processed records of each requests partition.
        """
        result_tps = [(results_topic, p) for p in self.partitions(results_topic)]
        marks = self.watermarks(result_tps)
        tails = self.read(
            {tp: (max(high - sample, low), high) for tp, (low, high) in marks.items()}
        )
        finished: list[int] = []
        shares: dict[str, float] = {}  # request id -> its share of its batch's GPU time
        for message in (m for records in tails.values() for m in records):
            try:
                result = self._results.decode(message.value())
            except DecodeError:
                continue
            if result.timings.finished_at is not None:
                finished.append(int(result.timings.finished_at.timestamp() * 1000))
            t = result.timings
            if result.status == "SUCCEEDED" and t.gpu_seconds > 0 and t.batch_size > 0:
                shares[result.request_id] = t.gpu_seconds / t.batch_size
        rate = results_rate(finished, now_ms)
        if not shares:
            return None, rate
        processed = self.read(
            {
                (r.topic, r.partition): (max(r.position - sample, r.log_start), r.position)
                for r in rows
            }
        )
        work = seconds = 0.0
        for message in (m for records in processed.values() for m in records):
            request_id, cost = self._request_cost(message.value())
            if request_id in shares and cost > 0:
                work += cost
                seconds += shares.pop(request_id)
        return (work / seconds if seconds > 0 else None), rate
