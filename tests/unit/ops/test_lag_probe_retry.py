"""``streamgen lag``'s group requests on a broker that has just started: the coordinator's
"still loading" answers are waited out up to the admin timeout; other errors are said at once."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamgen.ops.lag_probe import ADMIN_TIMEOUT_S, COORDINATOR_RETRY_S, LagError, _group_result


class _Coordinator:
    """Answers ``busy`` group requests with ``code``, then the answer."""

    def __init__(self, busy: int, code: int) -> None:
        self.busy, self.code, self.asked = busy, code, 0

    def ask(self) -> Future[Any]:
        self.asked += 1
        future: Future[Any] = Future()
        if self.asked <= self.busy:
            future.set_exception(KafkaException(KafkaError(self.code)))
        else:
            future.set_result("the group's offsets")
        return future


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
    ],
)
def test_a_coordinator_still_loading_is_asked_again(code: int) -> None:
    coordinator, clock = _Coordinator(busy=3, code=code), _Clock()
    answer = _group_result(coordinator.ask, "reading", clock=clock, sleep=clock.sleep)
    assert answer == "the group's offsets"
    assert coordinator.asked == 4
    assert clock.now == pytest.approx(3 * COORDINATOR_RETRY_S)


def test_a_coordinator_loading_past_the_timeout_is_a_lag_error_naming_the_request() -> None:
    coordinator, clock = (
        _Coordinator(busy=10**6, code=KafkaError.COORDINATOR_LOAD_IN_PROGRESS),
        _Clock(),
    )
    with pytest.raises(LagError, match="reading committed offsets of group 'g'"):
        _group_result(
            coordinator.ask,
            "reading committed offsets of group 'g'",
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.now <= ADMIN_TIMEOUT_S
    # At once, then once every retry interval until the deadline.
    assert coordinator.asked == int(ADMIN_TIMEOUT_S / COORDINATOR_RETRY_S) + 1


def test_any_other_error_is_said_at_once() -> None:
    coordinator, clock = _Coordinator(busy=1, code=KafkaError.GROUP_AUTHORIZATION_FAILED), _Clock()
    with pytest.raises(LagError, match="describing group"):
        _group_result(coordinator.ask, "describing group 'g'", clock=clock, sleep=clock.sleep)
    assert coordinator.asked == 1
    assert clock.now == 0.0
