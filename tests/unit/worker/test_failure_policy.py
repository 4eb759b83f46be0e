from datetime import UTC, datetime

import pytest

from streamgen.errors import (
    DeadlineExpired,
    DecodeError,
    DeviceLost,
    GenerationFailed,
    InvalidRequest,
    RequestCancelled,
    StoreUnavailable,
)
from streamgen.worker.failure_policy import Disposition, disposition_for

NOON = datetime(2030, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "attempt", "expected"),
    [
        (DecodeError("garbage"), 1, Disposition.DEAD_LETTER),
        (InvalidRequest("steps", 0, "1..150"), 1, Disposition.DEAD_LETTER),
        (DeadlineExpired(NOON, NOON), 1, Disposition.DEAD_LETTER),
        (DeadlineExpired(NOON, NOON, stage="generate"), 1, Disposition.DEAD_LETTER),
        (GenerationFailed("nan latents"), 1, Disposition.RETRY),
        (GenerationFailed("nan latents"), 2, Disposition.RETRY),
        (GenerationFailed("nan latents"), 3, Disposition.DEAD_LETTER),
        (RequestCancelled("partition revoked"), 1, Disposition.DROP),
        (StoreUnavailable("budget exhausted"), 1, Disposition.FATAL),
        (DeviceLost("illegal memory access"), 1, Disposition.FATAL),
        (RuntimeError("a bug"), 1, Disposition.FATAL),
    ],
)
def test_each_failure_class_has_one_disposition(
    error: BaseException, attempt: int, expected: Disposition
) -> None:
    assert disposition_for(error, attempt=attempt, max_attempts=3) is expected
