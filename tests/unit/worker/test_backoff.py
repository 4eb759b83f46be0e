import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.worker.backoff import Backoff


@given(attempt=st.integers(0, 10_000), seed=st.integers(0, 2**32))
def test_delay_is_within_the_exponential_ceiling(attempt: int, seed: int) -> None:
    backoff = Backoff(initial_s=0.1, max_s=30.0, rng=random.Random(seed))
    delay = backoff.delay(attempt)
    assert 0 <= delay <= min(30.0, 0.1 * 2 ** min(attempt, 60))


def test_ceiling_doubles_then_caps() -> None:
    backoff = Backoff(initial_s=0.25, max_s=2.0)
    assert [backoff.ceiling(n) for n in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=0, max_s=1)
    with pytest.raises(ValueError, match="attempt"):
        Backoff(initial_s=1, max_s=1).ceiling(-1)
