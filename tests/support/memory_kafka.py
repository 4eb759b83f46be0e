"""In-memory stand-ins for the worker's two Kafka clients (streamgen/worker/clients.py).

For unit tests of the consumer loop and the rebalance handler, and for benchmarks on machines
with no broker (the GPU machine has no Java, ``benchmarks/local_source.py``): the worker's real
``ConsumerLoop``, ``Committer`` and ``RebalanceHandler`` run against them unchanged, passed in
through the worker's seam (``assemble(seams=WorkerSeams(…))``).

- :class:`MemoryConsumer` serves one topic's partitions from lists, honours pause, resume and
  seek, keeps the committed offsets, answers an asynchronous commit at the next ``consume``
  (as librdkafka does, through ``on_commit``) and runs rebalance callbacks at the next
  ``consume`` too: the whole topic is assigned after ``subscribe``; ``revoke`` and ``lose``
  schedule the others.
- :class:`MemoryResults` keeps result events and dead letters and acknowledges each at once,
  so "durable" here means "stored and encoded", not "on a broker".
- :class:`MemoryProducer` keeps progress events (``worker/progress_publisher.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from streamgen.errors import FatalError
from streamgen.worker.clients import RebalanceCallback
from streamgen.worker.publisher import OnRejected

__all__ = ["MemoryConsumer", "MemoryMessage", "MemoryProducer", "MemoryResults"]


@dataclass(frozen=True)
class MemoryMessage:
    """What ``Consumer.consume`` hands out, as far as the worker reads it."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    due: float = 0.0  # monotonic seconds before which the record is not yet "produced"
    _headers: tuple[tuple[str, bytes], ...] = ()

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return list(self._headers)

    def timestamp(self) -> tuple[int, int]:
        return (1, int(time.time() * 1000))


@dataclass
class _Callbacks:
    on_assign: RebalanceCallback | None = None
    on_revoke: RebalanceCallback | None = None
    on_lost: RebalanceCallback | None = None


@dataclass
class MemoryConsumer:
    """One topic's partitions in memory. Not thread-safe: the consumer thread owns it, as it
    owns a real consumer; fill it before the run or from that thread."""

    topic: str
    partitions: int = 1
    on_commit: Callable[[Any, list[TopicPartition]], None] | None = None
    log: dict[int, list[MemoryMessage]] = field(default_factory=dict)
    committed_offsets: dict[int, int] = field(default_factory=dict)  # what the "broker" holds
    positions: dict[int, int] = field(default_factory=dict)  # assigned partitions only
    paused: set[int] = field(default_factory=set)
    closed: bool = False
    _callbacks: _Callbacks = field(default_factory=_Callbacks)
    _rebalances: list[tuple[str, list[int]]] = field(default_factory=list)
    _unanswered: list[list[TopicPartition]] = field(default_factory=list)

    def configured(self, config: dict[str, Any]) -> MemoryConsumer:
        """A ``ConsumerFactory``: takes the worker's ``on_commit`` from its client config."""
        self.on_commit = config.get("on_commit")
        return self

    def append(
        self, key: bytes | None, value: bytes | None, *, partition: int = 0, due: float = 0.0
    ) -> None:
        records = self.log.setdefault(partition, [])
        records.append(MemoryMessage(self.topic, partition, len(records), key, value, due))

    # -- test and benchmark controls: applied at the next consume, like a real rebalance ---
    def revoke(self, partitions: list[int]) -> None:
        self._rebalances.append(("revoke", partitions))

    def lose(self, partitions: list[int]) -> None:
        self._rebalances.append(("lost", partitions))

    def assign(self, partitions: list[int]) -> None:
        self._rebalances.append(("assign", partitions))

    # -- RequestConsumer --------------------------------------------------------------------
    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        if topics != [self.topic]:
            raise ValueError(f"{self.topic!r} is the only topic here, not {topics}")
        self._callbacks = _Callbacks(on_assign, on_revoke, on_lost)
        self.assign(list(range(self.partitions)))

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        self._rebalance()
        for offsets in self._unanswered:
            for tp in offsets:
                self.committed_offsets[tp.partition] = tp.offset
            if self.on_commit is not None:
                self.on_commit(None, offsets)
        self._unanswered.clear()
        out: list[Any] = []
        now = time.monotonic()
        live = [p for p in sorted(self.positions) if p not in self.paused]
        while live and len(out) < num_messages:  # round robin, like fetches of several brokers
            for partition in list(live):
                records = self.log.get(partition, [])
                position = self.positions[partition]
                if position >= len(records) or records[position].due > now:
                    live.remove(partition)
                elif len(out) < num_messages:
                    out.append(records[position])
                    self.positions[partition] = position + 1
        if not out and timeout > 0:
            time.sleep(min(timeout, 0.005))  # nothing yet: a real consumer would wait
        return out

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions[tp.partition] = self.committed_offsets.get(tp.partition, 0)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            # The pause flag stays, as librdkafka's does: a partition revoked while paused
            # comes back paused unless the application resumes it.
            self.positions.pop(tp.partition, None)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def seek(self, partition: TopicPartition) -> None:
        self.positions[partition.partition] = partition.offset

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> Any:
        if asynchronous:
            self._unanswered.append(offsets)
            return None
        for tp in offsets:
            self.committed_offsets[tp.partition] = tp.offset
        return offsets

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return (0, len(self.log.get(partition.partition, [])))

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, -1001))
            for tp in partitions
        ]

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.committed_offsets.get(tp.partition, -1001))
            for tp in partitions
        ]

    def close(self) -> None:
        self.closed = True

    def _rebalance(self) -> None:
        while self._rebalances:
            kind, numbers = self._rebalances.pop(0)
            tps = [TopicPartition(self.topic, p) for p in numbers]
            callback = {
                "assign": self._callbacks.on_assign,
                "revoke": self._callbacks.on_revoke,
                "lost": self._callbacks.on_lost,
            }[kind]
            if callback is not None:
                callback(self, tps)
            elif kind == "assign":
                self.incremental_assign(tps)
            else:
                self.incremental_unassign(tps)


class MemoryResults:
    """Result events and dead letters, kept in memory and acknowledged at once."""

    fatal: FatalError | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[tuple[str, bytes | None, bytes | None]] = []

    def configured(self, client_config: Mapping[str, Any], **_retry: Any) -> MemoryResults:
        """A ``SenderFactory``: memory needs none of the producer's settings, nor retries."""
        return self

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        on_ack: Callable[[], None],
        on_rejected: OnRejected | None = None,  # never called: memory takes any size
    ) -> None:
        with self._lock:
            self.records.append((topic, key, value))
        on_ack()

    def poll(self, timeout: float = 0.0) -> None:
        return None  # acknowledged at send

    def flush(self, timeout: float) -> int:
        return 0


class MemoryProducer:
    """A confluent-kafka ``Producer`` as the progress publisher uses it (one thread): records
    kept in memory, each delivery reported as acknowledged at the next ``poll`` or ``flush``."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self._reports: list[Callable[[Any, Any], None]] = []

    def produce(
        self, topic: str, value: bytes, key: bytes, *, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        self.records.append((topic, key, value))
        self._reports.append(on_delivery)

    def poll(self, timeout: float) -> int:
        reports, self._reports = self._reports, []
        for report in reports:
            report(None, None)
        return len(reports)

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return 0
