"""The share worker's last acknowledgements: sent, waited for, and what the broker answered.

``ShareConsumer.commit_sync`` answers per partition (None, or the KafkaException that refused
that partition's acknowledgements, typically locks that ran out while the worker stopped) and
raises when it gets no answer at all. A refusal means records whose results are durable go back
to the group and will be redone by another worker, so the stop was not clean: the caller counts
them as unfinished (exit 2), where ignoring the answer would have said "drained cleanly".
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException

from streamgen.telemetry.share_metrics import ShareMetrics

__all__ = ["refused_at_close"]

log = logging.getLogger(__name__)


def refused_at_close(consumer: Any, metrics: ShareMetrics, timeout_s: float) -> int:
    """Send what is pending and wait; the number of partitions whose acknowledgements were
    refused or never confirmed (0: every one accepted by the broker)."""
    try:
        answer = consumer.commit_sync(timeout_s)
    except KafkaException as exc:
        metrics.ack_failures.inc()
        log.warning("final acknowledgements not confirmed (%s): their records may be redone", exc)
        return 1
    refused = {tp: error for tp, error in (answer or {}).items() if error is not None}
    for tp, error in refused.items():
        log.warning(
            "final acknowledgements of %s[%d] refused (%s): its records will be redone",
            tp.topic,
            tp.partition,
            error,
        )
    if refused:
        metrics.ack_failures.inc(len(refused))
    return len(refused)
