"""What a failed produce means, decided here and nowhere else (pure: no I/O).

librdkafka reports a failure either by raising from ``produce()`` (``KafkaException``; checks
it can make locally, such as the record's size against ``message.max.bytes``) or in the
delivery report (the broker's answer, or librdkafka giving up after ``message.timeout.ms``).
Both go through :func:`classify_produce_error`:

==========================  ==============================================================
error                       what the publisher does
==========================  ==============================================================
``fatal()``                 FATAL: the producer instance is unusable (idempotence broken);
                            exit without committing, a restart gets a new producer
too large, invalid record   REJECTED: this record will never be accepted as it is; publish
                            a form of it that fits (its bytes behind a claim check)
anything else               RETRY: broker down, timeouts, leader moves, and also a topic or
                            ACL that went missing after a good start (DESIGN invariant 10):
                            produced again after a backoff, within ``worker.retry_budget_s``
==========================  ==============================================================
"""

from __future__ import annotations

import enum

from confluent_kafka import KafkaError

__all__ = ["ProduceFailure", "classify_produce_error"]


class ProduceFailure(enum.Enum):
    RETRY = "retry"
    REJECTED = "rejected"
    FATAL = "fatal"


# Errors about the record itself: producing the same bytes again gets the same answer.
_RECORD_PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,  # local message.max.bytes, or the topic's max.message.bytes
        KafkaError.RECORD_LIST_TOO_LARGE,  # the batch holding it exceeds the broker's limit
        KafkaError.INVALID_RECORD,  # e.g. no key on a compacted topic
        KafkaError.INVALID_TIMESTAMP,  # outside the topic's message.timestamp.*.ms window
        KafkaError._BAD_MSG,  # librdkafka cannot frame it
        KafkaError._INVALID_ARG,  # produce() refused the arguments (e.g. a bad header)
        KafkaError._KEY_SERIALIZATION,
        KafkaError._VALUE_SERIALIZATION,
    }
)


def classify_produce_error(error: KafkaError) -> ProduceFailure:
    if error.fatal():
        return ProduceFailure.FATAL
    if error.code() in _RECORD_PERMANENT:
        return ProduceFailure.REJECTED
    return ProduceFailure.RETRY
