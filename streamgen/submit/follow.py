"""Following the results topic until every submitted request has its result.

The follower marks the end of every results partition *before* the requests are published, so
it reads exactly the results that can belong to them; it assigns partitions itself (no group
rebalance to wait for) and never commits (its group id is unique and thrown away).
:class:`TopicFollower` is that much for any record keyed by request id (the progress topic's
follower, ``progress_watch.py``, is the other).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Collection
from typing import Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamgen.contracts.codec import AvroCodec
from streamgen.contracts.result import GenerationResult
from streamgen.errors import BrokerUnavailable, DecodeError
from streamgen.kafka_config import admin_config, consumer_config
from streamgen.kafka_metadata import MetadataProbe
from streamgen.settings import KafkaSettings

__all__ = ["ResultFollower", "TopicFollower"]

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 10.0
_LEADER_ELECTION = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}
# A poll slice short enough that the timeout and Ctrl-C are noticed promptly.
POLL_SLICE_S = 0.5


class _AboutARequest(Protocol):
    @property
    def request_id(self) -> str: ...


T = TypeVar("T", bound=_AboutARequest)


class TopicFollower(Generic[T]):
    """Reads a topic of records about requests from the ends that ``mark`` saw; ``label``
    names the topic in errors ("results topic ...")."""

    label = "results"

    def __init__(self, kafka: KafkaSettings, codec: AvroCodec[T], topic: str) -> None:
        config = consumer_config(
            kafka,
            f"streamgen-submit-{uuid.uuid4().hex}",
            required={
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
            },
            route_logs=True,
        )
        # Made once mark()'s probe has seen the broker accept the login (see publish.py).
        self._consumer_config = config
        self._codec = codec
        self._topic = topic
        self._bootstrap = kafka.bootstrap_servers
        self._admin_config = admin_config(kafka)

    def mark(self) -> dict[int, int]:
        """Start every results partition at its current end; returns partition → offset.
        A refused login is a ConfigError, said at once."""
        try:
            probe = MetadataProbe(self._admin_config)
            metadata = probe.list_topics(self._topic, METADATA_TIMEOUT_S)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"cannot read {self.label} topic {self._topic!r} at {self._bootstrap}: "
                f"{exc.args[0]}"
            ) from exc
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            why = topic.error.str() if topic is not None and topic.error else "no partitions"
            raise BrokerUnavailable(f"{self.label} topic {self._topic!r}: {why}")
        starts = {p: self._end_offset(p) for p in sorted(topic.partitions)}
        self._consumer.assign([TopicPartition(self._topic, p, o) for p, o in starts.items()])
        return starts

    def _end_offset(self, partition: int) -> int:
        # A topic created moments ago may not have a leader yet: retry that for a while.
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while True:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, partition), timeout=METADATA_TIMEOUT_S
                )
                return int(high)
            except KafkaException as exc:
                code = exc.args[0].code()
                if code not in _LEADER_ELECTION or time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"end offset of {self._topic}[{partition}] at {self._bootstrap}: "
                        f"{exc.args[0]}"
                    ) from exc
                time.sleep(POLL_SLICE_S / 5)

    def next_record(self, timeout_s: float) -> T | None:
        """The next record read within ``timeout_s``, or None. Records that do not decode
        (someone else's producer) are skipped with a warning."""
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            return None
        err = msg.error()
        if err is not None:
            if err.fatal():
                raise BrokerUnavailable(f"{self.label} consumer failed: {err.str()}")
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("%s consumer: %s", self.label, err.str())
            return None
        try:
            return self._codec.decode(msg.value())
        except DecodeError as exc:
            log.warning(
                "skipping undecodable record %s[%s]@%s: %s",
                msg.topic(),
                msg.partition(),
                msg.offset(),
                exc,
            )
            return None

    @functools.cached_property
    def _consumer(self) -> Consumer:
        return Consumer(self._consumer_config)

    def close(self) -> None:
        if "_consumer" in self.__dict__:
            self._consumer.close()


class ResultFollower(TopicFollower[GenerationResult]):
    def follow(
        self,
        wanted: Collection[str],
        *,
        timeout_s: float,
        on_result: Callable[[GenerationResult], None] = lambda _: None,
    ) -> dict[str, GenerationResult]:
        """Results of ``wanted`` request ids read before ``timeout_s`` runs out.

        A request may have several results (at least once): the latest read wins, and
        ``on_result`` is called once per request, on its first. Results of other requests and
        records that do not decode (someone else's producer) are skipped.
        """
        wanted = frozenset(wanted)
        pending = set(wanted)
        found: dict[str, GenerationResult] = {}
        deadline = time.monotonic() + timeout_s
        while pending and (left := deadline - time.monotonic()) > 0:
            result = self.next_record(min(POLL_SLICE_S, left))
            if result is None or result.request_id not in wanted:
                continue
            found[result.request_id] = result
            if result.request_id in pending:
                pending.discard(result.request_id)
                on_result(result)
        return found
