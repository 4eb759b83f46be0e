"""Publishing requests: keyed by request_id, idempotent, and nothing reported before the broker
acknowledged every record.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamgen.contracts.codec import AvroCodec
from streamgen.contracts.request import GenerationRequest
from streamgen.errors import BrokerUnavailable
from streamgen.kafka_config import admin_config, producer_config
from streamgen.kafka_metadata import MetadataProbe
from streamgen.settings import KafkaSettings
from streamgen.telemetry.tracing import inject_context

__all__ = ["Delivery", "DeliveryFailed", "RequestPublisher", "request_producer_config"]

log = logging.getLogger(__name__)

# How long to wait for metadata before publishing: a wrong address or a missing topic fails
# fast with a clear message instead of after the whole delivery timeout (a refused login, at
# once: streamgen.kafka_metadata).
METADATA_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Delivery:
    request_id: str
    topic: str
    partition: int
    offset: int


class DeliveryFailed(Exception):
    """Some records were not acknowledged; ``failures`` maps request_id → why."""

    def __init__(self, failures: dict[str, str], delivered: list[Delivery]) -> None:
        listed = "; ".join(f"{rid}: {why}" for rid, why in failures.items())
        super().__init__(f"{len(failures)} request(s) were not delivered: {listed}")
        self.failures = failures
        self.delivered = delivered


def request_producer_config(kafka: KafkaSettings, *, delivery_timeout_s: float) -> dict[str, Any]:
    """The user's client settings, then what this producer's guarantees need (not overridable):
    idempotence and acks=all so a retried send never duplicates or loses a request.
    """
    return producer_config(
        kafka,
        required={
            "enable.idempotence": True,
            "acks": "all",
            # Every record gets a delivery report (success or failure) within this time.
            "message.timeout.ms": max(1, int(delivery_timeout_s * 1000)),
            "linger.ms": 5,
        },
        route_logs=True,
    )


class RequestPublisher:
    """Publishes a batch of requests and returns where each one landed, or raises."""

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: AvroCodec[GenerationRequest],
        topic: str,
        *,
        delivery_timeout_s: float = 30.0,
    ) -> None:
        # Made at the first publish, after check_topic's probe: a producer made before it would
        # log its own failed logins beside the probe's clear error.
        self._producer_config = request_producer_config(
            kafka, delivery_timeout_s=delivery_timeout_s
        )
        self._codec = codec
        self._topic = topic
        self._delivery_timeout_s = delivery_timeout_s
        self._bootstrap = kafka.bootstrap_servers
        self._admin_config = admin_config(kafka)

    def check_topic(self) -> None:
        """Fail fast if the broker cannot be reached, refuses the login (ConfigError) or has no
        requests topic."""
        try:
            probe = MetadataProbe(self._admin_config)
            metadata = probe.list_topics(self._topic, METADATA_TIMEOUT_S)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"cannot reach Kafka at {self._bootstrap}: {exc.args[0]}"
            ) from exc
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            why = topic.error.str() if topic is not None and topic.error else "not in metadata"
            raise BrokerUnavailable(
                f"topic {self._topic!r} on {self._bootstrap}: {why} (`streamgen topics create` "
                "with the fleet's settings creates every topic they name, each lane's included)"
            )

    def publish(self, requests: Sequence[GenerationRequest]) -> list[Delivery]:
        """Produce every request and wait for every delivery report.

        1. Encode all first, so a request that does not fit the schema stops the batch before
           anything is sent.
        2. Produce, serving delivery reports while librdkafka's queue is full.
        3. Flush: every record ends with a report within ``message.timeout.ms``; a record
           still without one after that is counted as failed, never as sent.
        """
        encoded = [(r.request_id, self._codec.encode(r)) for r in requests]
        delivered: dict[str, Delivery] = {}
        failures: dict[str, str] = {}

        def report(request_id: str) -> Any:
            def on_delivery(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    failures[request_id] = err.str()
                    return
                delivered[request_id] = Delivery(
                    request_id, str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)
                )

            return on_delivery

        for request_id, value in encoded:
            trace_headers: list[tuple[str, bytes]] = []
            inject_context(trace_headers, topic=self._topic, key=request_id)
            headers: list[tuple[str, str | bytes | None]] = list(trace_headers)
            while True:
                try:
                    self._producer.produce(
                        self._topic,
                        key=request_id.encode(),
                        value=value,
                        headers=headers,
                        on_delivery=report(request_id),
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
                except KafkaException as exc:
                    # Refused before sending (e.g. larger than message.max.bytes): this record
                    # fails, the others still go, and the failure is reported with them.
                    failures[request_id] = exc.args[0].str()
                    break
            self._producer.poll(0)
        left = self._producer.flush(self._delivery_timeout_s + 5.0)
        for request_id, _ in encoded:
            if request_id not in delivered and request_id not in failures:
                failures[request_id] = f"no delivery report ({left} record(s) still queued)"
        ordered = [delivered[rid] for rid, _ in encoded if rid in delivered]
        if failures:
            raise DeliveryFailed(failures, ordered)
        log.debug("published %d request(s) to %s", len(ordered), self._topic)
        return ordered

    @functools.cached_property
    def _producer(self) -> Producer:
        return Producer(self._producer_config)

    def close(self) -> None:
        """Release the producer's connections (publish has already waited for every report)."""
        if "_producer" in self.__dict__:
            self._producer.close()
