"""The share ledger: every record of a round ends with exactly one acknowledgement, ACCEPT
only from a current ticket's completion, and a new poll only once the round is settled."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.worker.offsets import Ticket
from streamgen.worker.share_acks import Ack, RecordKey, ShareLedger

# One operation on a round of up to 6 records: complete(i) (its outputs became durable),
# release(i) (the worker will not finish it), stale(i) (a completion from the round before),
# or overrun (release every record still held).
OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["complete", "release", "stale"]), st.integers(0, 5)),
        st.just(("overrun", 0)),
    ),
    max_size=30,
)


@given(st.lists(st.tuples(st.integers(1, 6), OPS), min_size=1, max_size=4))
def test_every_record_of_every_round_gets_exactly_one_acknowledgement(
    rounds: list[tuple[int, list[tuple[str, int]]]],
) -> None:
    ledger = ShareLedger()
    previous: list[Ticket] = []
    for number, (size, ops) in enumerate(rounds):
        ledger.new_round()
        # The same offsets every round: a released record comes back with a new ticket.
        tickets = [ledger.hold("requests", 0, i) for i in range(size)]
        decided: dict[RecordKey, Ack] = {}
        for op, i in ops:
            ticket = tickets[i % size]
            key = (ticket.topic, ticket.partition, ticket.offset)
            if op == "complete":
                assert ledger.complete(ticket) == (key not in decided)
                decided.setdefault(key, Ack.ACCEPT)
            elif op == "release" and key in decided:
                with pytest.raises(ValueError, match="not held"):
                    ledger.release(key)
            elif op == "release":
                ledger.release(key)
                decided[key] = Ack.RELEASE
                assert not ledger.is_current(ticket), "the GPU thread drops its work"
            elif op == "stale" and previous:
                assert not ledger.complete(previous[i % len(previous)])
            elif op == "overrun":
                assert ledger.release_all() == size - len(decided)
                for t in tickets:
                    decided.setdefault((t.topic, t.partition, t.offset), Ack.RELEASE)
            assert ledger.held() == size - len(decided), f"round {number}"
        ledger.release_all()  # the round ends: what is left is released
        for t in tickets:
            decided.setdefault((t.topic, t.partition, t.offset), Ack.RELEASE)
        acks = ledger.take_acks()
        assert len(acks) == size, "one acknowledgement per record"
        assert dict(acks) == decided
        previous = tickets


def test_a_new_poll_with_records_unacknowledged_is_refused() -> None:
    ledger = ShareLedger()
    ledger.new_round()
    ticket = ledger.hold("requests", 0, 7)
    with pytest.raises(RuntimeError, match="1 records held"):
        ledger.new_round()
    assert ledger.complete(ticket)
    with pytest.raises(RuntimeError, match="1 acknowledgements unsent"):
        ledger.new_round()
    assert ledger.take_acks() == [(("requests", 0, 7), Ack.ACCEPT)]
    ledger.new_round()


def test_a_record_delivered_again_in_a_later_round_is_a_new_ticket() -> None:
    ledger = ShareLedger()
    ledger.new_round()
    first = ledger.hold("requests", 0, 7)
    ledger.release(("requests", 0, 7))
    ledger.take_acks()
    ledger.new_round()
    again = ledger.hold("requests", 0, 7)
    assert not ledger.complete(first), "the earlier round's completion is stale"
    assert ledger.is_current(again)
    assert ledger.complete(again)
    assert ledger.take_acks() == [(("requests", 0, 7), Ack.ACCEPT)]
