"""Start-up checks without a network: the store check's time bound, the group protocol's
consumer settings. The broker checks run against the real broker in tests/integration."""

from __future__ import annotations

import pytest

from streamgen.errors import ConfigError, StoreUnavailable
from streamgen.worker.assembly import group_protocol_config
from streamgen.worker.startup import check_store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class FlakyStore:
    """Unreachable for the first ``failures`` checks; records how it was asked."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[bool] = []

    def ensure_ready(self, *, create: bool = True) -> None:
        self.calls.append(create)
        if len(self.calls) <= self.failures:
            raise StoreUnavailable("object store at 127.0.0.1:1 unreachable: refused")


def test_a_store_that_comes_up_within_the_timeout_passes() -> None:
    clock, store = Clock(), FlakyStore(failures=3)
    check_store(store, create=False, timeout=30.0, sleep=clock.sleep, clock=clock)  # type: ignore[arg-type]
    assert store.calls == [False] * 4
    assert clock.now < 30.0


def test_a_store_that_never_answers_is_a_config_error_at_the_timeout() -> None:
    clock, store = Clock(), FlakyStore(failures=10**6)
    with pytest.raises(ConfigError, match=r"store\.endpoint") as caught:
        check_store(store, create=True, timeout=12.0, sleep=clock.sleep, clock=clock)  # type: ignore[arg-type]
    assert "12s" in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    assert 12.0 <= clock.now <= 12.0 + 1e-9  # never sleeps past the bound


def test_a_refused_credential_is_not_retried() -> None:
    class Refusing:
        calls = 0

        def ensure_ready(self, *, create: bool = True) -> None:
            Refusing.calls += 1
            raise ConfigError("store.secret_key", "refused")

    with pytest.raises(ConfigError, match=r"store\.secret_key"):
        check_store(Refusing(), create=False, timeout=30.0, sleep=lambda s: None)  # type: ignore[arg-type]
    assert Refusing.calls == 1


def test_the_classic_protocol_keeps_its_assignor_and_session_timeout() -> None:
    assert group_protocol_config("classic", 6000) == {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 6000,
    }


def test_the_consumer_protocol_leaves_assignment_and_session_to_the_broker() -> None:
    # librdkafka refuses both classic-only properties under group.protocol=consumer.
    assert group_protocol_config("consumer", 6000) == {"group.protocol": "consumer"}
