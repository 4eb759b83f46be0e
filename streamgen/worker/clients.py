"""The two Kafka clients the worker's logic talks to, as small Protocols, and the seams that
build them.

The consumer loop, the committer and the rebalance handler read requests and commit through a
:class:`RequestConsumer`; the outputs publish result events and dead letters through an
:class:`OutputSender`. In the product these are confluent-kafka's ``Consumer`` and the
worker's :class:`~streamgen.worker.publisher.Publisher`. :class:`WorkerSeams` is how a caller
passes others in (``assemble(seams=…)``, ``run_worker(seams=…)``), as httpx takes a
transport: the in-memory ones (``tests/support/memory_kafka.py``) let unit tests cover the
loop and rebalances without a broker, and benchmarks run the real loop where no broker can.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, overload

from confluent_kafka import Consumer, Producer, ShareConsumer, TopicPartition

from streamgen.errors import FatalError
from streamgen.worker.backoff import Backoff
from streamgen.worker.cancel_follower import CancelConsumerFactory
from streamgen.worker.outputs import RecordSender
from streamgen.worker.progress_publisher import ProgressProducerFactory
from streamgen.worker.publisher import OnRetry, Publisher

__all__ = [
    "PRODUCTION_SEAMS",
    "Clock",
    "ConsumerFactory",
    "OutputSender",
    "RebalanceCallback",
    "RequestConsumer",
    "SenderFactory",
    "ShareConsumerFactory",
    "ShareRequestConsumer",
    "WorkerSeams",
    "consume_promptly",
    "message_offset",
    "message_partition",
    "message_size",
    "wall_clock",
]

# (the consumer, the partitions that changed hands); called during ``consume``.
RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class RequestConsumer(Protocol):
    """What the worker uses of a Kafka consumer (confluent-kafka's ``Consumer``)."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None: ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]: ...

    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, partition: TopicPartition) -> None: ...

    @overload
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[True] = ...
    ) -> None: ...

    @overload
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]: ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int] | None: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]: ...

    def close(self) -> object: ...


# Builds the consumer from its client configuration (``on_commit`` included).
ConsumerFactory = Callable[[dict[str, Any]], RequestConsumer]


class ShareRequestConsumer(Protocol):
    """What the share-group loop uses of confluent-kafka's ``ShareConsumer`` (worker.mode=share)."""

    def subscribe(self, topics: list[str]) -> None: ...

    def poll(self, timeout: float = -1) -> Any: ...

    def acknowledge_offset(
        self, topic: str, partition: int, offset: int, ack_type: Any
    ) -> None: ...

    def commit_async(self) -> None: ...

    def commit_sync(self, timeout: float = 60) -> Any: ...

    def set_acknowledgement_commit_callback(self, callback: Callable[[Any, Any], None]) -> None: ...

    def close(self) -> object: ...


ShareConsumerFactory = Callable[[dict[str, Any]], ShareRequestConsumer]


class OutputSender(RecordSender, Protocol):
    """Where result events and dead letters go, and how the loop learns they are durable."""

    fatal: FatalError | None  # set once nothing more can be delivered

    def poll(self, timeout: float = 0.0) -> None:
        """Deliver acknowledgements (``on_ack``) on the calling thread."""

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for outstanding deliveries; return how many remain."""


class SenderFactory(Protocol):
    """Builds the output sender from its client configuration (the Publisher's signature)."""

    def __call__(
        self,
        client_config: Mapping[str, Any],
        *,
        backoff: Backoff,
        retry_budget_s: float = 0.0,
        on_retry: OnRetry | None = None,
    ) -> OutputSender: ...


# The time a request's deadline is checked against; timezone-aware (validate refuses others).
Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkerSeams:
    """What a test or a benchmark may put in the real clients' place, and nothing else.

    ``clock`` is read where a request is validated on intake; the GPU thread's deadline
    re-check and the result's timings still read the wall clock. ``cancel_consumer_factory``
    builds the cancels topic's reader (``run_worker`` only: ``assemble`` takes a CancelSet),
    ``progress_producer_factory`` the progress events' producer (``run_worker`` only too).
    """

    consumer_factory: ConsumerFactory = Consumer
    share_consumer_factory: ShareConsumerFactory = ShareConsumer
    cancel_consumer_factory: CancelConsumerFactory = Consumer
    progress_producer_factory: ProgressProducerFactory = Producer
    sender_factory: SenderFactory = Publisher
    clock: Clock = wall_clock


# The real clients and the wall clock: what the worker runs with unless a caller says otherwise.
PRODUCTION_SEAMS = WorkerSeams()


def consume_promptly(consumer: RequestConsumer, limit: int, timeout: float) -> list[Any]:
    """Up to ``limit`` records, returning as soon as there is one.

    librdkafka's batch consume waits out its whole timeout unless ``limit`` records arrive: at
    light load every request sat up to 100 ms (50 ms at the median, measured through a real
    broker) in the worker loop's poll before the worker saw it, and ``streamgen lag`` waited
    half a second per read. So: take what is already fetched; if nothing is, wait for the first
    record only, then take what arrived with it.
    """
    messages = consumer.consume(limit, 0)
    if messages or timeout <= 0:
        return messages
    messages = consumer.consume(1, timeout)
    if messages and limit > 1:
        messages += consumer.consume(limit - 1, 0)
    return messages


# What the fetch buffer reads of a polled record (confluent-kafka's ``Message``, or an
# in-memory one): where it comes from, its offset, and the bytes it holds in memory.
def message_partition(message: Any) -> tuple[str, int]:
    return (message.topic(), message.partition())


def message_offset(message: Any) -> int:
    return int(message.offset())


def message_size(message: Any) -> int:
    return len(message.value() or b"") + len(message.key() or b"")
