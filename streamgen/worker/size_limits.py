"""Start-up check: do the producer's and the output topics' record size limits agree?

A record over the producer's ``message.max.bytes`` is refused before it leaves; one over the
topic's ``max.message.bytes`` is refused by the broker after a round trip. Either way it goes
out claim-checked (:mod:`streamgen.worker.claim_check`), so a disagreement loses nothing, but
it says where records will be claim-checked that need not be, or refused that the producer
let through: one line at start-up, with the setting to change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import KafkaException

# confluent_kafka.admin re-exports these without __all__, which mypy --strict cannot see.
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from streamgen.contracts.dead_letter import CLAIM_CHECKED_MAX_BYTES
from streamgen.kafka_config import admin_config
from streamgen.settings import Settings

__all__ = ["check_record_size_limits", "size_limits_disagreement"]

log = logging.getLogger(__name__)

LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes
# Advisory: a broker slow to answer must not hold up the start for long.
_DESCRIBE_TIMEOUT_S = 10.0


def size_limits_disagreement(producer_limit: int, topic_limits: Mapping[str, int]) -> str | None:
    """One line on how the limits disagree and what to change, or None when they agree."""
    if not topic_limits or all(limit == producer_limit for limit in topic_limits.values()):
        return None
    topics = ", ".join(f"{name} max.message.bytes={n}" for name, n in sorted(topic_limits.items()))
    lowest = min(topic_limits.values())
    if producer_limit > lowest:
        advice = (
            f"records of {lowest}-{producer_limit} bytes are refused by the broker and then "
            f"claim-checked; set kafka.client_config message.max.bytes={lowest}, or raise the "
            f"topics' max.message.bytes to {producer_limit}"
        )
    else:
        advice = (
            f"records over {producer_limit} bytes are claim-checked although the topics take up "
            f"to {lowest}; to publish them whole set kafka.client_config "
            f"message.max.bytes={lowest}"
        )
    if lowest < CLAIM_CHECKED_MAX_BYTES:
        advice += (
            f"; and raise max.message.bytes to at least {CLAIM_CHECKED_MAX_BYTES}, or even a "
            "claim-checked record may not fit"
        )
    producer = f"producer message.max.bytes={producer_limit}"
    return f"record size limits disagree: {producer}, {topics}: {advice}"


def check_record_size_limits(settings: Settings) -> None:
    """Log one line if the producer's limit and the results and dead-letter topics' disagree."""
    client_config = settings.kafka.client_config
    producer_limit = int(client_config.get("message.max.bytes", LIBRDKAFKA_MESSAGE_MAX_BYTES))
    topics = (settings.topics.results, settings.topics.dead_letter)
    admin = AdminClient(admin_config(settings.kafka))
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in topics]
    try:
        futures = admin.describe_configs(resources, request_timeout=_DESCRIBE_TIMEOUT_S)
        limits = {
            resource.name: int(future.result()["max.message.bytes"].value)
            for resource, future in futures.items()
        }
    except (KafkaException, KeyError, ValueError) as exc:
        # Missing topics and an unreachable broker are reported by the consumer's start.
        log.warning("could not read max.message.bytes of %s: %s", ", ".join(topics), exc)
        return
    line = size_limits_disagreement(producer_limit, limits)
    if line is None:
        return
    # A producer limit below the topics' (librdkafka's default 1,000,000 against Kafka's
    # 1,048,588) only claim-checks a few more records: worth a line, not a warning on every
    # start. A limit above a topic's costs a refused round trip per oversized record.
    lowest = min(limits.values())
    risky = producer_limit > lowest or lowest < CLAIM_CHECKED_MAX_BYTES
    log.log(logging.WARNING if risky else logging.INFO, line)
