"""Share mode (``worker.mode=share``): what happened to the records the share group lent.

- ``streamgen_share_records_total{ack}``: records acknowledged, by acknowledgement: ``accept``
  (durable: result or dead letter acknowledged by the broker) or ``release`` (handed back:
  a stop, a transient intake failure, a round that overran its lock);
- ``streamgen_share_delivery_limit_total``: records dead-lettered because the broker had
  delivered them more than ``worker.share_delivery_limit`` times;
- ``streamgen_share_excess_released_total``: records released unstarted: a round keeps all
  its poll lent (the broker lends whole record batches) and starts them as the lock allows,
  so these are records the lock left no time for (or a stop, or intake failing until the
  deadline, or a requeue not durable in time); each costs the record one delivery, and a
  steady rate means the fleet is behind;
- ``streamgen_share_requeued_total``: records the lock left no time to start (or a stop) that
  were *requeued* instead (``worker.share_requeue``): a copy produced to their topic, the
  original accepted once the copy was durable (``worker/share_requeue.py``); no delivery spent;
- ``streamgen_share_lock_overruns_total``: rounds still unfinished when the lock deadline came
  (the lock less ``worker.share_lock_margin_s``); their unfinished records were released and
  will be redone, here or on another worker;
- ``streamgen_share_ack_failures_total``: acknowledgements the broker refused (a lock already
  expired: the record was handed to another worker, and is redone there);
- ``streamgen_share_backlog_messages{topic,partition}``: the group's records not yet accepted,
  as the broker counts them (``worker/share_backlog.py``); the same on every worker: take the max.

Declared apart from :class:`~streamgen.telemetry.metrics.Metrics` (at its size bound) on the
same registry, and only by a worker in share mode.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["ShareMetrics"]

AckName = Literal["accept", "release"]  # worker.share_acks.Ack's values


class ShareMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        records = Counter(
            "streamgen_share_records",
            "Share-group records acknowledged, by acknowledgement (accept | release)",
            ("ack",),
            registry=registry,
        )
        # Present at 0 so an alert on rate() sees the first one.
        self._acks = {ack: records.labels(ack) for ack in ("accept", "release")}
        self.delivery_limit = Counter(
            "streamgen_share_delivery_limit",
            "Records dead-lettered for being delivered more than worker.share_delivery_limit",
            registry=registry,
        )
        self.excess = Counter(
            "streamgen_share_excess_released",
            "Records released unstarted: the lock left no time to start them (fleet behind?)",
            registry=registry,
        )
        self.requeued = Counter(
            "streamgen_share_requeued",
            "Unstarted records requeued: copied to their topic, accepted once the copy is durable",
            registry=registry,
        )
        self.overruns = Counter(
            "streamgen_share_lock_overruns",
            "Rounds unfinished at their lock deadline: their unfinished records are redone",
            registry=registry,
        )
        self.ack_failures = Counter(
            "streamgen_share_ack_failures",
            "Acknowledgements the broker refused (lock expired: the record is redone elsewhere)",
            registry=registry,
        )
        self.backlog = Gauge(
            "streamgen_share_backlog_messages",
            "The share group's records not yet accepted, per partition, as the broker counts "
            "them (every worker reports the same: take the max)",
            ("topic", "partition"),
            registry=registry,
        )

    def acknowledged(self, ack: AckName, count: int = 1) -> None:
        self._acks[ack].inc(count)

    def set_backlog(self, topic: str, partition: int, records: int) -> None:
        self.backlog.labels(topic, str(partition)).set(records)
