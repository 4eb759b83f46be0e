"""Create streamgen's topics on a broker from settings, idempotently.

Running it again converges: a missing topic is created, an existing one gains partitions up to
the setting (Kafka cannot remove partitions, so more than asked is only reported) and gets the
configured retention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException

# confluent_kafka.admin re-exports these without __all__, which mypy --strict cannot see.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from streamgen.errors import BrokerUnavailable, ConfigError
from streamgen.kafka_config import admin_config
from streamgen.kafka_metadata import MetadataProbe
from streamgen.lanes import topic_ranks
from streamgen.settings import KafkaSettings, TopicSettings

__all__ = ["PROGRESS_RETENTION_MS", "TopicSpec", "TopicState", "create_topics", "plan_topics"]

log = logging.getLogger(__name__)

_TIMEOUT_S = 30.0


# A progress event is worth nothing once its request has its result; an hour still serves a
# caller who starts following a slow request late (and a backlog's picked-up events).
PROGRESS_RETENTION_MS = 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    retention_ms: int
    # "delete", or "compact,delete" for the cancels topic: one record per key, and none kept
    # past retention_ms, so the topic (and a restarting worker's read of it) stays bounded.
    cleanup_policy: str = "delete"


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    created: bool


def plan_topics(settings: TopicSettings) -> list[TopicSpec]:
    """The topics and their shape: every priority lane's requests topic (one, topics.requests,
    without lanes), results, dead letters, cancels and progress events.

    Only the requests topics are spread over ``partitions``: their partition count bounds how many
    GPU workers share the load. Results and dead letters arrive at GPU speed (tens per second);
    one partition keeps them in a single order for downstream consumers and for replay. Every
    worker reads all of the cancels topic, which operators write by hand: one partition.
    """
    return [
        *(
            TopicSpec(name, partitions, settings.replication_factor, settings.retention_ms)
            for name, partitions in (
                *((topic, settings.partitions) for topic in topic_ranks(settings)),
                (settings.results, 1),
                (settings.dead_letter, 1),
            )
        ),
        *(
            TopicSpec(
                name,
                1,
                settings.replication_factor,
                settings.retention_ms,
                cleanup_policy="compact,delete",
            )
            for name in [settings.cancels]
            if name  # empty: cancellation turned off
        ),
        # Keyed by request id like the requests, so spread as they are; short-lived.
        *(
            TopicSpec(name, settings.partitions, settings.replication_factor, PROGRESS_RETENTION_MS)
            for name in [settings.progress]
            if name
        ),
    ]


def create_topics(
    bootstrap_servers: str,
    specs: list[TopicSpec],
    *,
    client_config: dict[str, str] | None = None,
) -> list[TopicState]:
    kafka = KafkaSettings(bootstrap_servers=bootstrap_servers, client_config=client_config or {})
    config = admin_config(kafka)
    try:
        # A refused login is a ConfigError, said as soon as librdkafka reports it.
        existing = MetadataProbe(config).list_topics(None, _TIMEOUT_S).topics
    except KafkaException as exc:
        raise BrokerUnavailable(f"Kafka at {bootstrap_servers} did not answer: {exc}") from exc
    admin = AdminClient(config)
    missing = [spec for spec in specs if spec.name not in existing]
    created = _create(admin, missing)
    states = []
    for spec in specs:
        have = len(existing[spec.name].partitions) if spec.name in existing else spec.partitions
        if spec.name in existing and have < spec.partitions:
            _wait(admin.create_partitions([NewPartitions(spec.name, spec.partitions)]))
            log.info("topic %s grown from %d to %d partitions", spec.name, have, spec.partitions)
            have = spec.partitions
        elif have > spec.partitions:
            log.warning(
                "topic %s has %d partitions, more than the %d asked for; Kafka cannot shrink it",
                spec.name, have, spec.partitions,
            )  # fmt: skip
        states.append(TopicState(spec.name, have, spec.name in created))
    _set_retention(admin, specs)
    _await_metadata(admin, {state.name: state.partitions for state in states})
    return states


def _await_metadata(admin: AdminClient, partitions: dict[str, int]) -> None:
    """Return once the broker's metadata shows every topic with its partitions.

    Creating topics and partitions is acknowledged before the metadata cache catches up; a
    producer started right after would otherwise see an unknown topic or too few partitions.
    """
    deadline = time.monotonic() + _TIMEOUT_S
    while True:
        topics = admin.list_topics(timeout=_TIMEOUT_S).topics
        behind = {
            name: count
            for name, count in partitions.items()
            if name not in topics or len(topics[name].partitions) < count
        }
        if not behind:
            return
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"broker metadata still lacks {behind} after {_TIMEOUT_S}s")
        time.sleep(0.1)


def _create(admin: AdminClient, specs: list[TopicSpec]) -> set[str]:
    if not specs:
        return set()
    new = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config=_configs(spec),
        )
        for spec in specs
    ]
    created = set()
    for name, future in admin.create_topics(new, request_timeout=_TIMEOUT_S).items():
        try:
            future.result()
            created.add(name)
        except KafkaException as exc:
            # Someone else (another `topics create`, a test) created it first: that is success.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise _explain(name, exc) from exc
    return created


def _configs(spec: TopicSpec) -> dict[str, str]:
    return {"retention.ms": str(spec.retention_ms), "cleanup.policy": spec.cleanup_policy}


def _set_retention(admin: AdminClient, specs: list[TopicSpec]) -> None:
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                for name, value in _configs(spec).items()
            ],
        )
        for spec in specs
    ]
    _wait(admin.incremental_alter_configs(resources))


def _wait(futures: Mapping[Any, Any]) -> None:
    for subject, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            raise _explain(str(subject), exc) from exc


# Broker answers that mean a setting is wrong, and the setting to fix.
_SETTING_FOR_ERROR = {
    KafkaError.INVALID_REPLICATION_FACTOR: "topics.replication_factor",
    KafkaError.INVALID_PARTITIONS: "topics.partitions",
    KafkaError.INVALID_CONFIG: "topics.retention_ms",
    KafkaError.TOPIC_EXCEPTION: "topics",
}


def _explain(subject: str, exc: KafkaException) -> Exception:
    error: KafkaError = exc.args[0]
    if error.code() in _SETTING_FOR_ERROR:
        return ConfigError(_SETTING_FOR_ERROR[error.code()], f"{subject}: {error.str()}")
    if error.retriable() or error.code() in {KafkaError._TRANSPORT, KafkaError._TIMED_OUT}:
        return BrokerUnavailable(f"{subject}: {error.str()}")
    return RuntimeError(f"the broker refused {subject}: {error.str()}")
