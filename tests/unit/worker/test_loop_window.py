"""ConsumerLoop without a broker: the redo window (unfinished plus durable-but-uncommitted work)
never exceeds max_in_flight, whatever the coordinator does with the commits.

A worker whose commits go unanswered (a rebalance waiting for a dead member, a coordinator
moving) must stop taking records once max_in_flight of them are uncommitted, and keep polling
so it stays in the group; everything it took beyond that would be redone by the next owner.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import Shape, shape_of
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.backoff import Backoff
from streamgen.worker.batcher import MicroBatcher
from streamgen.worker.cancels import CancelSet
from streamgen.worker.commits import Committer
from streamgen.worker.events import LoopEvents, OutcomeSummary
from streamgen.worker.fetch_buffer import FetchBuffer
from streamgen.worker.intake import Intake
from streamgen.worker.lifecycle import Lifecycle
from streamgen.worker.loop import ConsumerLoop, LoopLimits
from streamgen.worker.offsets import OffsetTracker
from streamgen.worker.stalls import StallWatchdog
from streamgen.worker.work_queue import WorkQueue
from tests.support.memory_kafka import MemoryMessage

TOPIC = "requests"


class EndlessPartitions:
    """A consumer over partitions that never run dry, honouring pause/resume; commits are
    answered on the next poll only while ``answering`` is true (else they hang, as during a
    rebalance that waits for a dead member)."""

    def __init__(self, partitions: int, on_commit: Callable[[Any, list[Any]], None]) -> None:
        self.next = dict.fromkeys(range(partitions), 0)
        self.committed = dict.fromkeys(range(partitions), 0)  # what the broker has
        self.paused: set[int] = set()
        self.answering = True
        self._on_commit = on_commit
        self._unanswered: list[list[Any]] = []
        self.polls = 0

    def consume(self, num_messages: int, timeout: float) -> list[MemoryMessage]:
        self.polls += 1
        if self.answering:
            for offsets in self._unanswered:
                for tp in offsets:
                    self.committed[tp.partition] = max(self.committed[tp.partition], tp.offset)
                self._on_commit(None, offsets)
            self._unanswered.clear()
        out: list[MemoryMessage] = []
        live = [p for p in sorted(self.next) if p not in self.paused]
        while live and len(out) < num_messages:  # round robin, like fetches of several brokers
            partition = live[len(out) % len(live)]
            key = f"r-{partition}-{self.next[partition]}".encode()
            out.append(MemoryMessage(TOPIC, partition, self.next[partition], key, key))
            self.next[partition] += 1
        return out

    def commit(self, *, offsets: list[Any], asynchronous: bool) -> list[Any]:
        self._unanswered.append(offsets)
        return offsets

    def pause(self, partitions: list[Any]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[Any]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def seek(self, partition: Any) -> None:
        self.next[partition.partition] = partition.offset

    def get_watermark_offsets(self, tp: Any, cached: bool = True) -> tuple[int, int]:
        return (0, self.next[tp.partition])


class Engine:
    max_batch_size = staticmethod(lambda shape: 8)

    def shape_of(self, request: GenerationRequest) -> Shape:
        return shape_of(request, "dpmpp_2m")


class Outputs:
    """Publisher and sink stand-ins: nothing is produced, nothing fails."""

    fatal = None

    def poll(self, timeout: float) -> None:
        return None


class Admissions:
    """The decoder's view: the highest offset decoded per partition, independent of the loop;
    ``tenant_of`` (partition, offset) names each record's tenant."""

    def __init__(self, tenant_of: Callable[[int, int], str] = lambda p, o: "") -> None:
        self.next: dict[int, int] = {}
        self._tenant_of = tenant_of

    def decode(self, value: bytes) -> GenerationRequest:
        _, partition, offset = value.decode().split("-")
        p, o = int(partition), int(offset)
        self.next[p] = max(self.next.get(p, 0), o + 1)
        return GenerationRequest(
            request_id=value.decode(), prompt="p", tenant=self._tenant_of(p, o)
        )


def make_loop(
    max_in_flight: int,
    partitions: int,
    buffer_records: int = 50,
    tenant_caps: Callable[[str], int] | None = None,
    admissions: Admissions | None = None,
) -> tuple[ConsumerLoop, EndlessPartitions, Admissions]:
    tracker = OffsetTracker()
    admissions = admissions or Admissions()
    committer = Committer(tracker, on_committed=lambda confirmed, ends: None)
    consumer = EndlessPartitions(partitions, committer.on_commit)
    for partition in range(partitions):
        tracker.assign((TOPIC, partition))
    loop = ConsumerLoop(
        consumer=consumer,  # type: ignore[arg-type]
        publisher=Outputs(),  # type: ignore[arg-type]
        tracker=tracker,
        work=WorkQueue(
            MicroBatcher(max_wait_s=0.0, max_batch_size=Engine.max_batch_size), Engine().shape_of
        ),
        intake=Intake(decode=admissions.decode, validate=lambda request: request),
        cancels=CancelSet(max_ids=1, max_age_s=1.0),
        sink=Outputs(),  # type: ignore[arg-type]
        outputs=ThreadPoolExecutor(1),
        limits=LoopLimits(max_in_flight, commit_interval_s=0.0, drain_timeout_s=1.0),
        events=LoopEvents(),
        lifecycle=Lifecycle.joining(),
        decode_backoff=Backoff(0.1, 1.0),
        hooks=WorkerHooks(Metrics(), worker_id="w", host="h", group_id="g"),
        committer=committer,
        buffer=FetchBuffer(
            max_records=buffer_records,
            max_bytes=1 << 20,
            partition_of=lambda m: (m.topic(), m.partition()),
            offset_of=lambda m: m.offset(),
            size_of=lambda m: len(m.value()),
        ),
        stalls=StallWatchdog(
            consumer,  # type: ignore[arg-type]
            60.0,
            buffered=lambda tp: 0,
            on_stall=lambda tp, seconds: None,
        ),
        tenant_caps=tenant_caps,
    )
    return loop, consumer, admissions


def finish_everything(loop: ConsumerLoop) -> int:
    """The GPU and the outputs at infinite speed: every waiting item becomes durable."""
    loop.work.flush()
    done = 0
    while (batch := loop.work.take(timeout=0.0)) is not None:
        for item in batch.items:
            loop.events.durable(item.ticket, OutcomeSummary("SUCCEEDED", "", ""))
            done += 1
    return done


@settings(max_examples=40, deadline=None)
@given(
    max_in_flight=st.integers(1, 40),
    partitions=st.integers(1, 4),
    # Each step: does the coordinator answer commits during it, does the "GPU" finish work?
    steps=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60),
)
def test_the_uncommitted_window_never_exceeds_max_in_flight(
    max_in_flight: int, partitions: int, steps: list[tuple[bool, bool]]
) -> None:
    loop, consumer, admissions = make_loop(max_in_flight, partitions)
    for answering, gpu_runs in steps:
        consumer.answering = answering
        loop.step()
        # What a kill -9 now would make the next owner redo: everything admitted past the
        # offsets the broker holds (records only fetched cost nothing to read again).
        redo = sum(admissions.next.get(p, 0) - consumer.committed[p] for p in range(partitions))
        assert redo <= max_in_flight
        assert loop.tracker.uncommitted() == redo
        assert len(loop.buffer) <= loop.buffer.max_records + 1  # a poll overshoots by one
        if gpu_runs:
            finish_everything(loop)


def test_unanswered_commits_stop_intake_but_not_polling() -> None:
    loop, consumer, admissions = make_loop(max_in_flight=16, partitions=2, buffer_records=40)
    consumer.answering = False
    for _ in range(200):
        loop.step()
        finish_everything(loop)
    assert sum(admissions.next.values()) == 16  # all durable, none committed: no more taken
    assert loop.paused and consumer.polls >= 200  # still polling each step: membership kept
    assert len(loop.buffer) >= 40  # fetched ahead, paused only once the buffer was full
    consumer.answering = True
    for _ in range(5):
        loop.step()
        finish_everything(loop)
    assert sum(admissions.next.values()) > 16  # the answers opened the window again


def test_a_fast_engine_is_not_held_to_one_window_per_commit_interval() -> None:
    loop, _, admissions = make_loop(max_in_flight=16, partitions=1)
    loop.limits = LoopLimits(16, commit_interval_s=3600.0, drain_timeout_s=1.0)
    for _ in range(50):
        loop.step()
        finish_everything(loop)
    # Commits went out as durable work filled half the window, not once an hour.
    assert admissions.next[0] > 16 * 10


def test_a_full_window_does_not_pause_the_partitions_while_the_buffer_has_room() -> None:
    loop, consumer, admissions = make_loop(max_in_flight=8, partitions=2, buffer_records=100)
    consumer.answering = False
    loop.step()  # one poll fills the window and puts the rest of it in the buffer
    assert sum(admissions.next.values()) == 8
    assert not loop.paused and not consumer.paused
    while not loop.buffer.full():
        loop.step()
    loop.step()
    assert loop.paused and consumer.paused == {0, 1}


def test_records_of_a_partition_that_moves_away_are_never_admitted_from_the_buffer() -> None:
    loop, consumer, admissions = make_loop(max_in_flight=4, partitions=2, buffer_records=100)
    consumer.answering = False
    loop.step()
    assert any(m.partition() == 1 for m in _peek(loop))
    dropped = loop.buffer.drop({(TOPIC, 1)})  # what the rebalance handler does on revoke
    loop.tracker.revoke((TOPIC, 1))
    assert dropped > 0
    before = admissions.next.get(1, 0)
    consumer.answering = True
    consumer.paused.add(1)  # no longer ours: the consumer delivers nothing more of it
    for _ in range(20):
        loop.step()
        finish_everything(loop)
    assert admissions.next.get(1, 0) == before


def _peek(loop: ConsumerLoop) -> list[Any]:
    taken = loop.buffer.take(len(loop.buffer))
    loop.buffer.extend(taken, share=max(1, len(taken)))
    return taken
