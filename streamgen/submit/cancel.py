"""Cancelling requests: one cancel record per request id on the cancels topic
(``topics.cancels``; the record's form is ``streamgen.contracts.cancel``).

A cancel is a wish, not a guarantee: a worker that reads it before the request's batch starts
does not generate the request, one that reads it while the batch runs drops the request at the
next denoising step, and a request already finished stays finished (its result stands). Either
way a cancelled request ends with a FAILED result whose error code is CANCELLED. Cancelling an
unknown or finished id does nothing but put a small record on a compacted topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from confluent_kafka import KafkaError, Message, Producer

from streamgen.contracts.cancel import CancelRecord, MalformedCancel, encode_cancel
from streamgen.settings import Settings
from streamgen.submit.publish import DeliveryFailed, request_producer_config

__all__ = ["cancel_requests"]


def cancel_requests(
    settings: Settings,
    request_ids: Sequence[str],
    *,
    reason: str = "",
    delivery_timeout_s: float = 30.0,
) -> list[str]:
    """Publish a cancel for each id and wait until the broker has them all; returns the ids.

    Raises ``ValueError`` naming a malformed id or reason before anything is sent, and
    :class:`~streamgen.submit.publish.DeliveryFailed` for cancels the broker did not take.
    """
    now = datetime.now(UTC)
    try:
        records = [encode_cancel(CancelRecord(rid, now, reason)) for rid in request_ids]
    except MalformedCancel as exc:
        raise ValueError(str(exc)) from None
    producer = Producer(
        request_producer_config(settings.kafka, delivery_timeout_s=delivery_timeout_s)
    )
    failures: dict[str, str] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures[(msg.key() or b"").decode()] = err.str()

    for key, value in records:
        producer.produce(settings.topics.cancels, key=key, value=value, on_delivery=on_delivery)
    left = producer.flush(delivery_timeout_s + 5)
    if left:
        failures.setdefault("(unacknowledged)", f"{left} cancel(s) without a delivery report")
    if failures:
        raise DeliveryFailed(failures, [])
    return list(request_ids)
