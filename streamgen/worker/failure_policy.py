"""What to do with each kind of failure — decided here and nowhere else.

=========================  ==============================================================
failure                    disposition
=========================  ==============================================================
DecodeError                dead letter at once (no request id: the dead letter alone)
InvalidRequest             dead letter at once + FAILED result; DeadlineExpired is one, on
                           arrival, in the queue or mid-batch alike
GenerationFailed           generate again until ``max_attempts``, then dead letter + FAILED
CancelRequested            cancelled (`streamgen cancel`): a FAILED result with code
                           CANCELLED, no dead letter; its offset commits like any other
RequestCancelled           partition moved away: drop silently (the new owner redoes it)
TransientError             retried with backoff in place (store, publish, init images on the
                           GPU thread); never reaches here unless its retry budget ran out,
                           which is fatal
FatalError, anything else  exit non-zero without committing the work in flight
=========================  ==============================================================
"""

from __future__ import annotations

import enum

from streamgen.errors import CancelRequested, GenerationFailed, InvalidRecord, RequestCancelled

__all__ = ["Disposition", "disposition_for"]


class Disposition(enum.Enum):
    DEAD_LETTER = "dead_letter"
    CANCELLED = "cancelled"
    RETRY = "retry"
    DROP = "drop"
    FATAL = "fatal"


def disposition_for(error: BaseException, *, attempt: int, max_attempts: int) -> Disposition:
    # Before RequestCancelled: an expired request (DeadlineExpired is both) owes an outcome.
    if isinstance(error, InvalidRecord):
        return Disposition.DEAD_LETTER
    if isinstance(error, CancelRequested):
        return Disposition.CANCELLED
    if isinstance(error, RequestCancelled):
        return Disposition.DROP
    if isinstance(error, GenerationFailed):
        if error.retryable and attempt < max_attempts:
            return Disposition.RETRY
        return Disposition.DEAD_LETTER
    # FatalError, anything unforeseen, and a TransientError: one that escaped its retry loop
    # has exhausted its budget.
    return Disposition.FATAL
