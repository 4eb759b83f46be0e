"""The loop's poll returns at the first record instead of waiting out its timeout.

librdkafka's batch consume only returns early once ``num_messages`` records are in; the calls
the loop makes are what keeps a lone request from sitting in the poll (the time it saves is
measured through a real broker by ``scripts/bench-e2e-broker``, not asserted here).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamgen.worker.clients import consume_promptly


class ScriptedConsumer:
    """Hands out ``ready`` records at once and ``arriving`` ones only to a waiting call, the way
    a fetch that lands during the wait does."""

    def __init__(self, ready: int, arriving: int) -> None:
        self.ready = list(range(ready))
        self.arriving = list(range(ready, ready + arriving))
        self.calls: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        self.calls.append((num_messages, timeout))
        if timeout > 0 and not self.ready:
            self.ready, self.arriving = self.arriving, []
        out, self.ready = self.ready[:num_messages], self.ready[num_messages:]
        return out


def test_records_already_fetched_are_taken_without_waiting() -> None:
    consumer = ScriptedConsumer(ready=3, arriving=5)
    assert consume_promptly(consumer, 500, 0.1) == [0, 1, 2]
    assert consumer.calls == [(500, 0)]


def test_with_nothing_fetched_it_waits_for_one_record_then_takes_the_rest() -> None:
    consumer = ScriptedConsumer(ready=0, arriving=5)
    assert consume_promptly(consumer, 500, 0.1) == [0, 1, 2, 3, 4]
    # The waiting call asks for one record: librdkafka returns it as soon as it is there.
    assert consumer.calls == [(500, 0), (1, 0.1), (499, 0)]


def test_nothing_arrives() -> None:
    consumer = ScriptedConsumer(ready=0, arriving=0)
    assert consume_promptly(consumer, 500, 0.1) == []
    assert consumer.calls == [(500, 0), (1, 0.1)]


def test_a_zero_timeout_never_waits() -> None:
    consumer = ScriptedConsumer(ready=0, arriving=4)
    assert consume_promptly(consumer, 500, 0.0) == []
    assert consumer.calls == [(500, 0)]


@given(
    ready=st.integers(0, 20),
    arriving=st.integers(0, 20),
    limit=st.integers(1, 30),
    timeout=st.sampled_from([0.0, 0.005, 0.1]),
)
def test_never_more_than_the_limit_and_in_order(
    ready: int, arriving: int, limit: int, timeout: float
) -> None:
    consumer = ScriptedConsumer(ready, arriving)
    got = consume_promptly(consumer, limit, timeout)
    assert len(got) <= limit
    assert got == sorted(got) and got == list(range(len(got)))
    assert all(n >= 1 for n, _ in consumer.calls)  # librdkafka refuses a batch of 0
    assert sum(1 for _, t in consumer.calls if t > 0) <= 1  # waits once at most
