import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.errors import FatalError, StoreUnavailable
from streamgen.worker.backoff import Backoff, TransientRetries


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


def test_transient_retries_back_off_then_give_up_after_the_budget() -> None:
    now = [100.0]
    retries = TransientRetries(Backoff(1.0, 8.0), budget_s=10.0, clock=lambda: now[0])
    outage = StoreUnavailable("connection refused")
    delays = []
    for _ in range(4):
        delays.append(retries.next_delay("object store", outage))
        now[0] += 3.0
    assert [d <= c for d, c in zip(delays, [1, 2, 4, 8], strict=True)] == [True] * 4
    with pytest.raises(FatalError, match=r"object store unavailable for 12s \(budget 10s\)"):
        retries.next_delay("object store", outage)


def test_transient_retries_without_a_budget_go_on_for_ever() -> None:
    now = [0.0]
    retries = TransientRetries(Backoff(1.0, 1.0), clock=lambda: now[0])
    for _ in range(100):
        now[0] += 3600
        assert retries.next_delay("object store", StoreUnavailable("down")) <= 1.0
