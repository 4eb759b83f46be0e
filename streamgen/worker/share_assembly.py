"""The share-group side of the worker's one consuming seam (``worker.mode=share``): a
share-group loop in front of the serving path both modes share (``serving.py``), where the
consumer-group side builds its loop (``assembly.py``). Nothing here owns partitions: the
broker lends records one by one, and the ledger of the current round is what says whether a
ticket's work is still the worker's to finish."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import AcknowledgeType

from streamgen import kafka_config
from streamgen.settings import Settings
from streamgen.telemetry.share_metrics import ShareMetrics
from streamgen.worker.clients import ShareRequestConsumer
from streamgen.worker.serving import Serving
from streamgen.worker.share_acks import Ack, ShareLedger
from streamgen.worker.share_backlog import watch_share_backlog
from streamgen.worker.share_feed import FeedLimits
from streamgen.worker.share_loop import ShareLimits, ShareLoop
from streamgen.worker.share_requeue import Unstarted
from streamgen.worker.share_startup import (
    ShareGroupFacts,
    records_per_round,
    requeue_chunk,
    round_budget_s,
)

__all__ = ["ACK_TYPES", "share_consumer_config", "share_loop"]

log = logging.getLogger(__name__)

ACK_TYPES: dict[Ack, Any] = {
    Ack.ACCEPT: AcknowledgeType.ACCEPT,
    Ack.RELEASE: AcknowledgeType.RELEASE,
}


def share_consumer_config(settings: Settings, worker_id: str, per_round: int) -> dict[str, Any]:
    """Explicit acknowledgement (a record is accepted only once durable). librdkafka sends
    ``max.poll.records`` as the ShareFetch's MaxRecords, which the broker honours only at record
    batch boundaries (it lends whole batches): the round keeps and feeds all it lent."""
    defaults: dict[str, Any] = {
        "client.id": worker_id,
        "share.acknowledgement.mode": "explicit",
        "max.poll.records": per_round,
    }
    return kafka_config.consumer_config(
        settings.kafka, settings.worker.group_id, defaults=defaults, route_logs=True
    )


def share_loop(
    serving: Serving, ledger: ShareLedger, facts: ShareGroupFacts
) -> tuple[ShareRequestConsumer, ShareLoop]:
    """The share-group loop in front of ``serving``, subscribed: rounds of at most what the
    group's lock (``facts``, found at start-up) leaves time to generate."""
    settings, w = serving.settings, serving.settings.worker
    per_round = records_per_round(settings, facts, settings.engine.max_batch_size)
    metrics = ShareMetrics(serving.hooks.metrics.registry)
    watch_share_backlog(settings.kafka, w.group_id, metrics, serving.lifecycle)
    consumer = serving.seams.share_consumer_factory(
        share_consumer_config(settings, serving.worker_id, per_round)
    )
    loop = ShareLoop(
        consumer=consumer,
        ack_types=ACK_TYPES,
        publisher=serving.publisher,
        ledger=ledger,
        work=serving.work,
        intake=serving.intake,
        cancels=serving.cancels,
        sink=serving.sink,
        outputs=serving.output_pool,
        limits=ShareLimits(
            feed=FeedLimits(
                window=per_round,
                batch_size=max(1, settings.engine.max_batch_size),
                batch_s=w.share_batch_s,
            ),
            round_s=round_budget_s(settings, facts),
            delivery_limit=w.share_delivery_limit,
        ),
        events=serving.events,
        lifecycle=serving.lifecycle,
        decode_backoff=serving.backoff,
        hooks=serving.hooks,
        metrics=metrics,
        unstarted=Unstarted(
            ledger=ledger,
            sender=serving.publisher,
            metrics=metrics,
            chunk=max(1, requeue_chunk(settings)),
            requeue=w.share_requeue,
        ),
        progress=serving.reporter,
    )
    consumer.set_acknowledgement_commit_callback(loop.on_acknowledged)
    consumer.subscribe(list(serving.lanes.topics))
    log.info(
        "share group %s: lock %.0f s, rounds of at most %d records within %.0f s, "
        "dead letter past %d deliveries, %s what the lock leaves no time to start",
        w.group_id,
        facts.lock_s,
        per_round,
        round_budget_s(settings, facts),
        w.share_delivery_limit,
        "requeue" if w.share_requeue else "release",
    )
    return consumer, loop
