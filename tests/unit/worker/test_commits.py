"""Committer: one asynchronous commit in flight, only the broker's answer moves the tracker, and
an answer for an earlier assignment generation never does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from streamgen.worker.commits import Committer
from streamgen.worker.offsets import OffsetTracker, TopicPartitionKey

TP = ("requests", 0)
TP1 = ("requests", 1)


@dataclass
class Answer:
    """A partition of a commit's answer (``TopicPartition.error`` cannot be set from Python)."""

    topic: str
    partition: int
    offset: int
    error: KafkaError | None = None


class FakeConsumer:
    """Records commits; a synchronous commit is answered from ``sync_errors``."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[TopicPartitionKey, int], bool]] = []
        self.sync_errors: dict[TopicPartitionKey, KafkaError] = {}

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        self.sent.append(({(tp.topic, tp.partition): tp.offset for tp in offsets}, asynchronous))
        if asynchronous:
            return None
        return [
            Answer(
                tp.topic, tp.partition, tp.offset, self.sync_errors.get((tp.topic, tp.partition))
            )
            for tp in offsets
        ]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = True) -> tuple[int, int]:
        return (0, 100)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(points: dict[TopicPartitionKey, int]) -> list[Answer]:
    return [Answer(t, p, off) for (t, p), off in points.items()]


def setup(
    *partitions: TopicPartitionKey,
) -> tuple[OffsetTracker, Committer, FakeConsumer, list[dict[TopicPartitionKey, int]], Clock]:
    tracker = OffsetTracker()
    confirmed: list[dict[TopicPartitionKey, int]] = []
    clock = Clock()
    committer = Committer(
        tracker, on_committed=lambda points, _ends: confirmed.append(points), clock=clock
    )
    for tp in partitions or (TP,):
        tracker.assign(tp)
    return tracker, committer, FakeConsumer(), confirmed, clock


def done(tracker: OffsetTracker, tp: TopicPartitionKey, *offsets: int) -> None:
    for offset in offsets:
        tracker.complete(tracker.hand_out(tp, offset))


def test_async_commit_moves_the_tracker_only_when_answered() -> None:
    tracker, committer, consumer, confirmed, _ = setup()
    done(tracker, TP, 0, 1, 2)
    committer.commit_async(consumer)
    assert consumer.sent == [({TP: 3}, True)]
    assert tracker.commit_point(TP) == 3  # not confirmed yet: still to commit
    committer.on_commit(None, answer({TP: 3}))
    assert tracker.commit_point(TP) is None
    assert confirmed == [{TP: 3}]
    assert not committer.in_flight


def test_one_async_commit_in_flight_at_a_time() -> None:
    tracker, committer, consumer, _, _ = setup()
    done(tracker, TP, 0)
    committer.commit_async(consumer)
    done(tracker, TP, 1)
    committer.commit_async(consumer)  # the first is unanswered: nothing more is sent
    assert len(consumer.sent) == 1
    committer.on_commit(None, answer({TP: 1}))
    committer.commit_async(consumer)
    assert consumer.sent[-1] == ({TP: 2}, True)


def test_failed_async_commit_is_sent_again_next_time() -> None:
    tracker, committer, consumer, confirmed, _ = setup()
    done(tracker, TP, 0)
    committer.commit_async(consumer)
    committer.on_commit(KafkaError(KafkaError.REQUEST_TIMED_OUT), answer({TP: 1}))
    assert confirmed == []
    assert tracker.commit_point(TP) == 1
    committer.commit_async(consumer)
    assert consumer.sent == [({TP: 1}, True), ({TP: 1}, True)]


def test_per_partition_error_confirms_only_the_others() -> None:
    tracker, committer, consumer, confirmed, _ = setup(TP, TP1)
    done(tracker, TP, 0)
    done(tracker, TP1, 0, 1)
    committer.commit_async(consumer)
    parts = answer({TP: 1, TP1: 2})
    parts[0].error = KafkaError(KafkaError.REBALANCE_IN_PROGRESS)
    committer.on_commit(None, parts)
    assert confirmed == [{TP1: 2}]
    assert tracker.commit_points() == {TP: 1}


def test_answer_for_an_earlier_generation_is_ignored() -> None:
    tracker, committer, consumer, confirmed, _ = setup()
    done(tracker, TP, 0, 1, 2, 3, 4)
    committer.commit_async(consumer)
    tracker.revoke(TP)  # revoked and re-assigned while the answer was on its way
    tracker.assign(TP)
    done(tracker, TP, 2)
    committer.on_commit(None, answer({TP: 5}))
    assert confirmed == []
    assert tracker.commit_point(TP) == 3  # the new generation's own mark, untouched


def test_answer_to_another_commit_does_not_clear_the_pending_one() -> None:
    tracker, committer, consumer, confirmed, _ = setup()
    done(tracker, TP, 0, 1)
    committer.commit_async(consumer)
    committer.on_commit(None, answer({TP: 1}))  # not what is pending (2)
    assert committer.in_flight
    assert confirmed == []


def test_unanswered_commit_stops_holding_back_after_the_stale_bound() -> None:
    tracker, committer, consumer, confirmed, clock = setup()
    done(tracker, TP, 0)
    committer.commit_async(consumer)
    done(tracker, TP, 1)
    clock.now = 29.0
    committer.commit_async(consumer)
    assert len(consumer.sent) == 1
    clock.now = 31.0
    committer.commit_async(consumer)
    assert consumer.sent[-1] == ({TP: 2}, True)
    committer.on_commit(None, answer({TP: 1}))  # the old answer, finally: ignored
    committer.on_commit(None, answer({TP: 2}))
    assert confirmed == [{TP: 2}]


def test_sync_commit_confirms_from_its_return_value() -> None:
    tracker, committer, consumer, confirmed, _ = setup(TP, TP1)
    done(tracker, TP, 0)
    done(tracker, TP1, 0)
    consumer.sync_errors[TP1] = KafkaError(KafkaError.UNKNOWN_MEMBER_ID)
    committer.commit_sync(consumer, only=[TP, TP1])
    assert consumer.sent == [({TP: 1, TP1: 1}, False)]
    assert confirmed == [{TP: 1}]
    assert tracker.commit_points() == {TP1: 1}


def test_sync_commit_only_the_partitions_asked_for() -> None:
    tracker, committer, consumer, _, _ = setup(TP, TP1)
    done(tracker, TP, 0)
    done(tracker, TP1, 0)
    committer.commit_sync(consumer, only=[TP1])
    assert consumer.sent == [({TP1: 1}, False)]


def test_late_async_answer_after_a_newer_sync_commit_is_ignored() -> None:
    tracker, committer, consumer, confirmed, _ = setup()
    done(tracker, TP, 0)
    committer.commit_async(consumer)
    done(tracker, TP, 1)
    committer.commit_sync(consumer)
    committer.on_commit(None, answer({TP: 1}))  # older than the confirmed 2: no move back
    assert confirmed == [{TP: 2}]
    assert tracker.commit_point(TP) is None


def test_nothing_new_to_commit_sends_nothing() -> None:
    tracker, committer, consumer, _, _ = setup()
    done(tracker, TP, 0)
    committer.commit_sync(consumer)
    tracker.hand_out(TP, 1)  # handed out, not durable: the mark stays at 1
    committer.commit_async(consumer)
    committer.commit_sync(consumer)
    assert consumer.sent == [({TP: 1}, False)]
