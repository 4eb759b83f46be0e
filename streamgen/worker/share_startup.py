"""What a worker in share mode (``worker.mode=share``) checks before its model loads: the broker
serves share groups, the group's record lock leaves time for at least one batch, and the
worker's delivery limit is below the broker's, and with ``worker.share_requeue`` the worker may
write to its requests topics (DESIGN invariant 10: fail fast at start).

Kafka 4.2.2, as found against the real broker:

- The lock is the group config ``share.record.lock.duration.ms`` (the broker's
  ``group.share.record.lock.duration.ms``, 30 s, unless set on the group; 15 s at least,
  ``group.share.min.record.lock.duration.ms``); the AdminClient describes it on a GROUP
  resource, for a group that does not exist yet too.
- The delivery count limit is a broker config only (``group.share.delivery.count.limit``, 5):
  a group config of that name is refused as unknown. Past it the broker archives a record
  without handing it to anyone, so the worker's own limit must stay below it: the worker
  dead-letters a record before the broker would drop it unseen.
- A broker without share groups (``share.version`` 0) answers a share consumer's first
  heartbeat with the fatal error UNSUPPORTED_VERSION; the AdminClient has no way to ask.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, ShareConsumer, TopicCollection
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclOperation,
    AdminClient,
    ConfigResource,
    ResourceType,
)

from streamgen import kafka_config
from streamgen.errors import ConfigError
from streamgen.lanes import topic_ranks
from streamgen.settings import Settings

__all__ = [
    "ShareGroupFacts",
    "check_share_group",
    "probe_group",
    "records_per_round",
    "requeue_chunk",
]

log = logging.getLogger(__name__)

LOCK_CONFIG = "share.record.lock.duration.ms"
DELIVERY_LIMIT_CONFIG = "group.share.delivery.count.limit"
# A broker without share groups refuses the first heartbeat, sent at once; measured on 4.2.2
# with share.version 0: the fatal error arrived at the second 1 s poll. Three seconds of
# polling a probe group (never the worker's: it would take records) is enough to see it.
PROBE_S = 3.0


@dataclass(frozen=True)
class ShareGroupFacts:
    lock_s: float  # the group's record lock
    broker_delivery_limit: int  # past this many deliveries the broker drops a record


def check_share_group(settings: Settings) -> ShareGroupFacts:
    """Facts of ``worker.group_id``'s share group, or ConfigError naming the setting to fix."""
    w = settings.worker
    admin = AdminClient(kafka_config.admin_config(settings.kafka))
    timeout = settings.kafka.connect_timeout_s
    lock_ms = _describe(admin, ResourceType.GROUP, w.group_id, LOCK_CONFIG, settings)
    broker = str(next(iter(admin.list_topics(timeout=timeout).brokers)))  # any: one config
    limit = _describe(admin, ResourceType.BROKER, broker, DELIVERY_LIMIT_CONFIG, settings)
    facts = ShareGroupFacts(lock_s=lock_ms / 1000, broker_delivery_limit=limit)
    if w.share_delivery_limit >= facts.broker_delivery_limit:
        raise ConfigError(
            "worker.share_delivery_limit",
            f"{w.share_delivery_limit} is not below the broker's {DELIVERY_LIMIT_CONFIG}="
            f"{limit}: past that the broker drops a record without a dead letter. Lower it.",
        )
    if round_budget_s(settings, facts) < w.share_batch_s:
        raise ConfigError(
            "worker.share_batch_s",
            f"a batch may take {w.share_batch_s:g}s but group {w.group_id!r} locks a record "
            f"for {facts.lock_s:g}s ({LOCK_CONFIG}), less worker.share_lock_margin_s="
            f"{w.share_lock_margin_s:g}s: no batch could finish before its lock ends. Raise "
            f"the group's {LOCK_CONFIG} (`streamgen dev up` sets it on the local stack), or "
            "lower worker.share_lock_margin_s or worker.share_batch_s.",
        )
    if w.share_requeue:
        _check_requeue_write(admin, settings)
    _probe_share_groups(settings)
    return facts


def _check_requeue_write(admin: AdminClient, settings: Settings) -> None:
    """A requeue produces to the record's own topic: without Write there, each copy would be
    retried for ever while its original waits out the round (then released). The broker says
    what this principal may do to a topic (authorized operations); no answer: not refused."""
    topics = list(topic_ranks(settings.topics))
    timeout = settings.kafka.connect_timeout_s
    found = admin.describe_topics(TopicCollection(topics), include_authorized_operations=True)
    for topic, future in found.items():
        try:
            allowed = future.result(timeout=timeout).authorized_operations
        except KafkaException:
            continue  # check_broker has said what is wrong with the topic itself
        if allowed is not None and not {AclOperation.WRITE, AclOperation.ALL} & set(allowed):
            raise ConfigError(
                "worker.share_requeue",
                f"share mode requeues what a round will not start to its own topic, and this "
                f"principal may not write to {topic!r}. Grant the worker Write on it (README: "
                "Security), or set worker.share_requeue=false (unstarted records released).",
            )


def round_budget_s(settings: Settings, facts: ShareGroupFacts) -> float:
    """How long a round may take: the lock less the margin."""
    return facts.lock_s - settings.worker.share_lock_margin_s


def records_per_round(settings: Settings, facts: ShareGroupFacts, max_batch_size: int) -> int:
    """As many batches' worth of records as fit in a round, no more than the window less what
    requeues may leave in flight (``requeue_chunk``: two chunks)."""
    batches = math.floor(round_budget_s(settings, facts) / settings.worker.share_batch_s)
    window = settings.worker.max_in_flight - 2 * requeue_chunk(settings)
    return max(1, min(window, batches * max(1, max_batch_size)))


def requeue_chunk(settings: Settings) -> int:
    """Copies a share round requeues per producer batch (0: no requeue). A crash may serve
    twice the requests of at most two chunks (the copies durable, their originals' ACCEPTs on
    their way), beside a window of started work: a round's window and two chunks together stay
    within ``worker.max_in_flight``, DESIGN invariant 8's bound on redo."""
    w = settings.worker
    return max(1, w.max_in_flight // 8) if w.share_requeue else 0


def _describe(
    admin: AdminClient, kind: ResourceType, name: str, config: str, settings: Settings
) -> int:
    servers, timeout = settings.kafka.bootstrap_servers, settings.kafka.connect_timeout_s
    try:
        (future,) = admin.describe_configs([ConfigResource(kind, name)]).values()
        entries = future.result(timeout=timeout)
    except KafkaException as exc:
        raise ConfigError(
            "worker.mode",
            f"share mode needs {config} of {kind.name.lower()} {name!r}, and the broker at "
            f"{servers} would not describe it: {exc.args[0].str().rstrip('.')}. Grant the "
            "worker DESCRIBE_CONFIGS on it, or use worker.mode=group.",
        ) from None
    entry = entries.get(config)
    if entry is None or entry.value is None:
        raise ConfigError(
            "worker.mode",
            f"the broker has no {config} for {kind.name.lower()} {name!r}: it does not serve "
            "share groups (Kafka 4.2 or later does). Use worker.mode=group.",
        )
    return int(entry.value)


def probe_group(group_id: str) -> str:
    """The share group the start-up probe joins: never the worker's (it would take records)."""
    return f"{group_id}.share-probe"


def _probe_share_groups(settings: Settings) -> None:
    """A share consumer of a probe group polls for PROBE_S: a fatal error means no share groups."""
    probe = ShareConsumer(
        kafka_config.consumer_config(
            settings.kafka,
            probe_group(settings.worker.group_id),
            defaults={"share.acknowledgement.mode": "explicit", "max.poll.records": 1},
        )
    )
    try:
        probe.subscribe([settings.topics.requests])
        deadline = time.monotonic() + PROBE_S
        while time.monotonic() < deadline:
            for message in probe.poll(0.5):  # a probe group's record: left to its lock
                if message.error() is None:
                    return
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() == KafkaError.UNSUPPORTED_VERSION or error.fatal():
            raise ConfigError(
                "worker.mode",
                f"the broker refuses share groups ({error.str()}): share.version is 0 there. "
                "Kafka 4.2 turns them on for a new cluster; an upgraded one needs `kafka-features "
                "upgrade --release-version 4.2` (README, Queue mode), or use worker.mode=group.",
            ) from None
        raise
    finally:
        probe.close()
