"""The ACLs each streamgen role needs, and granting them on a broker.

The same lists are in README (Security); ``streamgen dev up --secure`` grants them on the local
broker and the integration tests run the worker with exactly these and nothing else.

- **worker**: read the requests topic in its consumer group; write results and dead letters
  (idempotently); read those two topics' configs (the record size check at start-up); read the
  cancels topic (assigned, never in a group: no group ACL beyond the worker's own); write the
  progress topic (``worker.progress``).
- **producer**: write the requests topic (idempotently), and the cancels topic
  (``streamgen cancel``: whoever may submit a request may cancel one); read the results topic
  and the progress topic (``submit --wait`` follows them, assigned, never in a group).

``IDEMPOTENT_WRITE`` on the cluster is implied by any topic WRITE since Kafka 3.0 (KIP-679);
it is granted anyway so the same lists work on older brokers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException

# confluent_kafka.admin re-exports these without __all__, which mypy --strict cannot see.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from streamgen.errors import BrokerUnavailable
from streamgen.lanes import topic_ranks
from streamgen.settings import TopicSettings
from streamgen.worker.share_startup import probe_group

__all__ = ["grant", "producer_acls", "worker_acls"]

_TIMEOUT_S = 30.0
_Grant = tuple[ResourceType, str, AclOperation]


def worker_acls(topics: TopicSettings, group_id: str, *, share: bool = False) -> list[_Grant]:
    """``share``: worker.mode=share, whose start-up also reads the group's record lock and the
    broker's delivery limit, and joins a probe share group (worker/share_startup.py), and
    which requeues what a round will not start to its requests topic (worker.share_requeue,
    worker/share_requeue.py)."""
    share_grants = [
        (ResourceType.GROUP, probe_group(group_id), AclOperation.READ),
        (ResourceType.GROUP, group_id, AclOperation.DESCRIBE_CONFIGS),
        (ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE_CONFIGS),
        *((ResourceType.TOPIC, topic, AclOperation.WRITE) for topic in topic_ranks(topics)),
    ]
    return [
        *(share_grants if share else []),
        *((ResourceType.TOPIC, topic, AclOperation.READ) for topic in topic_ranks(topics)),
        (ResourceType.GROUP, group_id, AclOperation.READ),
        *((ResourceType.TOPIC, topic, AclOperation.READ) for topic in _cancels(topics)),
        *((ResourceType.TOPIC, topic, AclOperation.WRITE) for topic in _progress(topics)),
        *(
            (ResourceType.TOPIC, topic, operation)
            for topic in (topics.results, topics.dead_letter)
            for operation in (AclOperation.WRITE, AclOperation.DESCRIBE_CONFIGS)
        ),
        (ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE),
    ]


def _cancels(topics: TopicSettings) -> list[str]:
    """The cancels topic, unless ``topics.cancels`` is empty (cancellation turned off)."""
    return [topics.cancels] if topics.cancels else []


def _progress(topics: TopicSettings) -> list[str]:
    """The progress topic, unless ``topics.progress`` is empty."""
    return [topics.progress] if topics.progress else []


def producer_acls(topics: TopicSettings) -> list[_Grant]:
    return [
        # Every priority lane's topic (topics.requests alone without lanes).
        *((ResourceType.TOPIC, topic, AclOperation.WRITE) for topic in topic_ranks(topics)),
        *((ResourceType.TOPIC, topic, AclOperation.WRITE) for topic in _cancels(topics)),
        # submit --wait follows the results topic (assigned, no group: it never commits).
        (ResourceType.TOPIC, topics.results, AclOperation.READ),
        # ... and the progress topic, the same way.
        *((ResourceType.TOPIC, topic, AclOperation.READ) for topic in _progress(topics)),
        (ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE),
    ]


def grant(admin_config: Mapping[str, Any], user: str, grants: list[_Grant]) -> None:
    """Allow ``user`` each (resource, name, operation) from any host; idempotent."""
    allow = AclPermissionType.ALLOW
    bindings = [
        AclBinding(resource, name, ResourcePatternType.LITERAL, f"User:{user}", "*", op, allow)
        for resource, name, op in grants
    ]
    admin = AdminClient(dict(admin_config))
    for binding, future in admin.create_acls(bindings, request_timeout=_TIMEOUT_S).items():
        try:
            future.result()
        except KafkaException as exc:
            raise BrokerUnavailable(f"granting {binding}: {exc.args[0].str()}") from exc
