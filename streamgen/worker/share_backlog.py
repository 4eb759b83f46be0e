"""A share-mode worker's view of its group's backlog, for the metrics and the dashboard: every
``BACKLOG_INTERVAL_S`` it asks the group's coordinator for each partition's lag
(``streamgen.kafka_protocol.share_offsets``: the records not yet accepted, held and released ones
included) and sets ``streamgen_share_backlog_messages{topic,partition}``.

Every worker of the group reports the same figures, so a dashboard takes their ``max``, never
their sum. A failed ask is logged once per kind of failure and the gauges keep their last
values; it never touches the loop (the thread only reads from the broker).
"""

from __future__ import annotations

import logging
import threading

from streamgen.errors import ConfigError
from streamgen.kafka_protocol.link import LinkError
from streamgen.kafka_protocol.share_offsets import ShareOffsetsError, share_offsets
from streamgen.settings import KafkaSettings
from streamgen.telemetry.share_metrics import ShareMetrics
from streamgen.worker.lifecycle import Lifecycle

__all__ = ["BACKLOG_INTERVAL_S", "watch_share_backlog"]

log = logging.getLogger(__name__)

BACKLOG_INTERVAL_S = 15.0


def watch_share_backlog(
    kafka: KafkaSettings,
    group: str,
    metrics: ShareMetrics,
    lifecycle: Lifecycle,
    interval_s: float = BACKLOG_INTERVAL_S,
) -> threading.Thread:
    """Start the daemon thread; it ends when the worker starts closing."""
    thread = threading.Thread(
        target=_watch,
        args=(kafka, group, metrics, lifecycle, interval_s),
        name="share-backlog",
        daemon=True,
    )
    thread.start()
    return thread


def _watch(
    kafka: KafkaSettings,
    group: str,
    metrics: ShareMetrics,
    lifecycle: Lifecycle,
    interval_s: float,
) -> None:
    said: set[str] = set()
    while not lifecycle.wait_closing(interval_s):
        try:
            found = share_offsets(kafka, group, None, timeout_s=min(interval_s, 15.0))
        except (ShareOffsetsError, LinkError, ConfigError, OSError) as exc:
            kind = type(exc).__name__
            if kind not in said:
                said.add(kind)
                log.warning(
                    "share group %s: backlog not read (%s); retrying every %.0f s",
                    group,
                    exc,
                    interval_s,
                )
            continue
        for (topic, partition), at in found.items():
            if at.lag is not None:
                metrics.set_backlog(topic, partition, at.lag)
