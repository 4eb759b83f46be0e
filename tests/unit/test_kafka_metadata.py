"""The sliced metadata wait of streamgen.kafka_metadata, against a fake admin client and a fake
clock: a refused login is said in the slice librdkafka reports it, an unreachable broker takes
the whole timeout, and a slow broker still gets a request long enough to answer."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamgen.errors import ConfigError
from streamgen.kafka_metadata import FIRST_SLICE_S, MetadataProbe, list_topics_watching_login

REFUSED = KafkaError(
    KafkaError._AUTHENTICATION,
    "SASL authentication error: Authentication failed due to invalid credentials",
)
CONNECTION_REFUSED = KafkaError(KafkaError._TRANSPORT, "Connect to 127.0.0.1:1 failed: refused")
ALL_DOWN = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
METADATA = object()


class FakeAdmin:
    """An admin client on a fake clock: ``reports`` are (time, error) pairs that reach
    ``error_cb`` (here: ``errors``) when ``poll`` serves them; a request answers when its slice
    lasts at least ``answer_takes`` seconds after ``answers_from``; else it waits its whole
    slice and fails as librdkafka does."""

    def __init__(
        self,
        reports: tuple[tuple[float, KafkaError], ...] = (),
        *,
        answers_from: float = float("inf"),
        answer_takes: float = 0.0,
    ) -> None:
        self.now = 0.0
        self.pending = sorted(reports, key=lambda r: r[0])
        self.errors: list[KafkaError] = []
        self.answers_from = answers_from
        self.answer_takes = answer_takes
        self.slices: list[float] = []

    def clock(self) -> float:
        return self.now

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        assert timeout > 0, "a slice must wait: a zero timeout would spin"
        self.slices.append(timeout)
        ready = max(self.now, self.answers_from) + self.answer_takes
        if ready <= self.now + timeout:
            self.now = ready
            return METADATA
        self.now += timeout
        raise KafkaException(
            KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Broker transport failure")
        )

    def poll(self, timeout: float = -1) -> int:
        due = [error for at, error in self.pending if at <= self.now]
        self.pending = [(at, error) for at, error in self.pending if at > self.now]
        self.errors.extend(due)
        return len(due)


def wait(admin: FakeAdmin, timeout: float) -> Any:
    return list_topics_watching_login(
        admin, admin.errors, topic="t", timeout=timeout, servers="b:9092", clock=admin.clock
    )


def test_a_refused_login_is_said_in_the_slice_it_is_reported_not_at_the_timeout() -> None:
    admin = FakeAdmin(((0.3, ALL_DOWN), (0.31, REFUSED)))
    with pytest.raises(ConfigError) as caught:
        wait(admin, timeout=120.0)
    assert caught.value.setting == "kafka.client_config"
    assert "refused our credentials" in str(caught.value)
    assert "invalid credentials" in str(caught.value) and "b:9092" in str(caught.value)
    # Reported at 0.31 s, inside the second slice (0.25 s .. 0.75 s): said when it ends.
    assert admin.slices == [FIRST_SLICE_S, 2 * FIRST_SLICE_S]
    assert admin.now == pytest.approx(3 * FIRST_SLICE_S)


def test_a_refusal_carried_by_the_request_itself_is_said_too() -> None:
    class RefusingAdmin(FakeAdmin):
        def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
            self.now += timeout
            raise KafkaException(REFUSED)

    admin = RefusingAdmin()
    with pytest.raises(ConfigError, match=r"kafka\.client_config"):
        wait(admin, timeout=30.0)
    assert admin.now == pytest.approx(FIRST_SLICE_S)


def test_an_unreachable_broker_waits_the_whole_timeout_and_says_why() -> None:
    admin = FakeAdmin(((0.01, CONNECTION_REFUSED), (0.02, ALL_DOWN)))
    with pytest.raises(KafkaException) as caught:
        wait(admin, timeout=5.0)
    # The whole timeout and not a millisecond more: the last slice is cut to what is left.
    assert admin.now == pytest.approx(5.0)
    assert sum(admin.slices) == pytest.approx(5.0)
    assert admin.slices[:4] == [0.25, 0.5, 1.0, 2.0]
    # "Connection refused" says why; "all brokers down" and "transport failure" do not.
    assert caught.value.args[0] is CONNECTION_REFUSED


def test_with_no_error_reported_the_requests_own_error_is_raised() -> None:
    admin = FakeAdmin()
    with pytest.raises(KafkaException) as caught:
        wait(admin, timeout=1.0)
    assert caught.value.args[0].code() == KafkaError._TRANSPORT


def test_a_broker_slow_to_answer_gets_a_slice_long_enough() -> None:
    # Up after 2 s, and each answer takes 1.5 s: longer than the first slices.
    admin = FakeAdmin(answers_from=2.0, answer_takes=1.5)
    assert wait(admin, timeout=30.0) is METADATA
    assert max(admin.slices) >= 1.5


def test_an_answer_in_the_first_slice_returns_at_once() -> None:
    admin = FakeAdmin(answers_from=0.0, answer_takes=0.01)
    assert wait(admin, timeout=30.0) is METADATA
    assert admin.slices == [FIRST_SLICE_S]


def test_a_configuration_librdkafka_refuses_names_kafka_client_config() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.client_config.*librdkafka refused it"):
        MetadataProbe({"bootstrap.servers": "b:1", "no.such.property": "x"})
