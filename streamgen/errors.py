"""Everything that can go wrong in streamgen, and what the worker does about it.

::

    StreamgenError
    ├── ConfigError                 a setting is invalid; start-up stops and names it
    ├── InvalidRecord               → dead letter at once (+ FAILED result if the id is known)
    │   ├── DecodeError             bytes are not a request we can read (stage "decode")
    │   ├── DeliveryLimitExceeded   share mode: delivered past the limit (stage "consume")
    │   └── InvalidRequest          a field is out of range or inconsistent (stage "validate")
    │       └── DeadlineExpired ◀─┐ the request's deadline passed before it was generated
    ├── GenerationFailed          │ one request failed in the engine; retried, then dead letter
    │   └── RequestCancelled ─────┘ dropped from its batch (cancelled, or expired: both)
    │       └── CancelRequested     someone cancelled it (`streamgen cancel`): CANCELLED result
    ├── TransientError              infrastructure hiccup; retried with backoff, never dead-lettered
    │   ├── StoreUnavailable        object store down, slow or refusing
    │   ├── BrokerUnavailable       produce failed or timed out
    │   └── SchemaRegistryUnavailable  the registry could not be asked (record is fine)
    └── FatalError                  the process must exit without committing what is in flight
        └── DeviceLost              CUDA illegal memory access, device lost, ECC …

Each error carries a ``stage`` and a stable ``code`` so that dead-letter headers, result events
and log lines say the same thing.

``DeadlineExpired`` is both an ``InvalidRequest`` and a ``RequestCancelled``: one error whether the
deadline is found passed on arrival (intake rejects invalid records), in the queue or between
denoising steps (the engine drops requests from a batch as ``RequestCancelled``). Either way the
request is dead-lettered with a FAILED result, never retried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = [
    "BrokerUnavailable",
    "CancelRequested",
    "ConfigError",
    "DeadlineExpired",
    "DecodeError",
    "DeliveryLimitExceeded",
    "DeviceLost",
    "FatalError",
    "GenerationFailed",
    "InvalidRecord",
    "InvalidRequest",
    "RequestCancelled",
    "SchemaRegistryUnavailable",
    "StoreUnavailable",
    "StreamgenError",
    "TransientError",
]


class StreamgenError(Exception):
    """Root of every error streamgen raises on purpose."""

    code: str = "STREAMGEN_ERROR"
    stage: str = ""
    retryable: bool = False


class ConfigError(StreamgenError):
    """A setting is missing or invalid. ``setting`` names it (flag / env var / file key)."""

    code = "CONFIG_ERROR"

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"setting {setting!r}: {message}")
        self.setting = setting


class InvalidRecord(StreamgenError):
    """The record can never succeed as it is; it goes to the dead-letter topic."""

    code = "INVALID_RECORD"


class DecodeError(InvalidRecord):
    """The value bytes could not be decoded into a request."""

    code = "DECODE_ERROR"
    stage = "decode"


class InvalidRequest(InvalidRecord):
    """A decoded request has a field out of range; the message names field, value and range."""

    code = "INVALID_REQUEST"
    stage = "validate"

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        super().__init__(f"{field}={value!r} is invalid: {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed


class DeliveryLimitExceeded(InvalidRecord):
    """Share mode: the broker delivered the record more times than ``worker.share_delivery_limit``
    (workers died or overran their locks holding it): dead-lettered instead of tried again."""

    code = "DELIVERY_LIMIT_EXCEEDED"
    stage = "consume"

    def __init__(self, delivery_count: int, limit: int) -> None:
        super().__init__(
            f"delivered {delivery_count} times, more than worker.share_delivery_limit={limit}"
        )
        self.delivery_count = delivery_count
        self.limit = limit


class GenerationFailed(StreamgenError):
    """The engine failed for this one request (after bisection isolated it)."""

    code = "GENERATION_FAILED"
    stage = "generate"
    retryable = True

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class RequestCancelled(GenerationFailed):
    """The request was dropped from its batch (deadline passed or cancelled); not retried."""

    code = "CANCELLED"
    retryable = False


class CancelRequested(RequestCancelled):
    """The request was cancelled on the cancels topic (``streamgen cancel``). It ends with a
    FAILED result whose error code is CANCELLED, no dead letter (it is not a bad request),
    and its offset commits like any finished request. ``stage`` says where it was found:
    ``intake`` (on arrival), ``queue`` (when its batch came up) or ``generate`` (it left a
    running batch at a step boundary)."""

    code = "CANCELLED"

    def __init__(self, request_id: str, *, stage: str) -> None:
        super().__init__(f"request {request_id} was cancelled (topics.cancels) at {stage}")
        self.stage = stage


class DeadlineExpired(InvalidRequest, RequestCancelled):
    """The request's deadline was not later than ``now`` when it was checked. ``stage`` says
    where: ``validate`` (on arrival, before it was queued) or ``generate`` (its batch was being
    formed or ran, and the request left it)."""

    code = "DEADLINE_EXPIRED"

    def __init__(self, deadline: datetime, now: datetime, *, stage: str = "validate") -> None:
        super().__init__(
            "deadline",
            deadline.isoformat(),
            f"must be later than now ({now.isoformat()}): the request expired",
        )
        self.stage = stage


class TransientError(StreamgenError):
    """Infrastructure failed; the same work will succeed later. Retried, never dead-lettered."""

    code = "TRANSIENT"
    retryable = True


class StoreUnavailable(TransientError):
    code = "STORE_UNAVAILABLE"
    stage = "store"


class BrokerUnavailable(TransientError):
    code = "BROKER_UNAVAILABLE"
    stage = "publish"


class SchemaRegistryUnavailable(TransientError):
    """The schema registry could not be asked (down, timing out, 5xx, refusing credentials):
    the record is fine, so it is read again after a backoff, never dead-lettered."""

    code = "SCHEMA_REGISTRY_UNAVAILABLE"
    stage = "decode"


class FatalError(StreamgenError):
    """The process cannot go on safely; it exits non-zero without committing in-flight work."""

    code = "FATAL"


class DeviceLost(FatalError):
    code = "DEVICE_LOST"
    stage = "generate"
