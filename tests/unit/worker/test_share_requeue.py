"""Share mode's requeue: a record a round will not start is copied to its topic, and its
original accepted only once the copy is durable; released instead when requeue is off or the
copy is not durable in time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streamgen.telemetry.share_metrics import ShareMetrics
from streamgen.worker.share_acks import Ack, ShareLedger
from streamgen.worker.share_requeue import (
    H_REQUEUE_COUNT,
    H_REQUEUE_OFFSET,
    H_REQUEUE_PARTITION,
    H_REQUEUE_TOPIC,
    Unstarted,
    requeue_headers,
)
from tests.support.held_sender import HeldSender
from tests.support.memory_kafka import MemoryMessage

Rig = tuple[Unstarted, ShareLedger, HeldSender, CollectorRegistry]


def unstarted(*, chunk: int = 2, requeue: bool = True) -> Rig:
    ledger, sender, registry = ShareLedger(), HeldSender(), CollectorRegistry()
    ledger.new_round()
    metrics = ShareMetrics(registry)
    give = Unstarted(ledger=ledger, sender=sender, metrics=metrics, chunk=chunk, requeue=requeue)
    return give, ledger, sender, registry


def counted(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(f"streamgen_share_{name}_total") or 0.0


def records(n: int, topic: str = "requests") -> list[MemoryMessage]:
    return [MemoryMessage(topic, i % 2, 100 + i, b"key%d" % i, b"value%d" % i) for i in range(n)]


def test_requeue_off_releases_at_once_and_sends_nothing() -> None:
    give, ledger, sender, registry = unstarted(requeue=False)
    give.give_back(records(3))
    assert sender.sent == []
    assert [ack for _, ack in ledger.take_acks()] == [Ack.RELEASE] * 3
    assert ledger.held() == 0
    assert counted(registry, "excess_released") == 3


def test_an_original_is_accepted_only_once_its_copy_is_durable_a_chunk_at_a_time() -> None:
    give, ledger, sender, registry = unstarted(chunk=2)
    give.give_back(records(5))
    assert len(sender.sent) == 2, "one chunk (its own producer batch) at a time"
    assert ledger.held() == 5 and ledger.take_acks() == [], "nothing accepted before durable"
    assert give.pump() == 0
    assert len(sender.sent) == 2, "the next chunk waits for this one's acknowledgements"
    accepted: list[int] = []
    while sender.unacknowledged():
        n = sender.acknowledge()
        assert give.pump() == n, "each durable copy's original is accepted (to be sent now)"
        accepted += [offset for (_, _, offset), ack in ledger.take_acks() if ack is Ack.ACCEPT]
    assert sorted(accepted) == [100, 101, 102, 103, 104]
    assert [len(sender.sent), ledger.held(), give.pending()] == [5, 0, 0]
    assert counted(registry, "requeued") == 5
    assert counted(registry, "excess_released") == 0


def test_a_copy_goes_to_its_own_topic_with_key_value_and_headers_kept() -> None:
    give, _, sender, _ = unstarted(chunk=4)
    lane = MemoryMessage(
        "requests.high", 3, 7, b"id-1", b"avro", _headers=(("traceparent", b"00-ab"),)
    )
    give.give_back([lane])
    [copy] = sender.sent
    assert (copy.topic, copy.key, copy.value) == ("requests.high", b"id-1", b"avro")
    assert copy.headers == [
        ("traceparent", b"00-ab"),
        (H_REQUEUE_COUNT, b"1"),
        (H_REQUEUE_TOPIC, b"requests.high"),
        (H_REQUEUE_PARTITION, b"3"),
        (H_REQUEUE_OFFSET, b"7"),
    ]


def test_a_copy_of_a_copy_counts_two_and_names_where_it_was_last() -> None:
    first = MemoryMessage("requests", 0, 5, b"k", b"v", _headers=(("a", b"1"),))
    copy = MemoryMessage("requests", 1, 9, b"k", b"v", _headers=tuple(requeue_headers(first)))
    assert requeue_headers(copy) == [
        ("a", b"1"),
        (H_REQUEUE_COUNT, b"2"),
        (H_REQUEUE_TOPIC, b"requests"),
        (H_REQUEUE_PARTITION, b"1"),
        (H_REQUEUE_OFFSET, b"9"),
    ]


def test_copies_not_durable_in_time_are_released_and_a_late_one_accepts_nothing() -> None:
    give, ledger, sender, registry = unstarted(chunk=2)
    give.give_back(records(5))
    assert give.abandon() == 5
    assert [ack for _, ack in ledger.take_acks()] == [Ack.RELEASE] * 5
    ledger.new_round()  # the next poll lends the originals again
    sender.acknowledge()  # the two copies sent land after all: a duplicate, never a loss
    give.pump()
    assert ledger.take_acks() == [] and len(sender.sent) == 2
    assert counted(registry, "excess_released") == 5
    assert counted(registry, "requeued") == 0


def test_a_copy_durable_before_the_deadline_is_not_released_by_it() -> None:
    give, ledger, sender, _ = unstarted(chunk=2)
    give.give_back(records(3))
    sender.acknowledge()
    give.pump()  # two accepted, the third's copy sent
    assert give.abandon() == 1
    acks = ledger.take_acks()
    assert [ack for _, ack in acks] == [Ack.ACCEPT, Ack.ACCEPT, Ack.RELEASE]
    assert acks[2][0] == ("requests", 0, 102)
