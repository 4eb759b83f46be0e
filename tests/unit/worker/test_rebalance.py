"""The consumer loop and the rebalance handler without a broker (DESIGN invariant 5).

The worker is assembled as in production (``assemble``) with the in-memory consumer and
result sender of ``tests/support/memory_kafka.py``; the GPU is played by the test, which takes
batches off the work queue and says which items became durable. What the "broker" holds is
``MemoryConsumer.committed_offsets``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamgen.configuration import load_settings
from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.store.base import ObjectStore
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker import assembly
from streamgen.worker.assembly import WorkerParts, assemble
from streamgen.worker.clients import WorkerSeams
from streamgen.worker.events import OutcomeSummary
from streamgen.worker.lifecycle import Phase
from streamgen.worker.work_item import WorkItem
from tests.support.idle_engine import IdleEngine
from tests.support.memory_kafka import MemoryConsumer, MemoryResults
from tests.support.memory_store import MemoryStore

TOPIC = "streamgen.requests"


@pytest.fixture
def worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[WorkerParts, MemoryConsumer, MemoryResults]:
    # Work still on the "GPU" at a revoke is waited for this long; the test never finishes it.
    monkeypatch.setattr(assembly, "REVOKE_GRACE_S", 0.05)
    settings = load_settings({"store.url": f"file://{tmp_path}"}, env={})
    consumer, results = MemoryConsumer(TOPIC, partitions=2), MemoryResults()
    codec = request_codec(settings.kafka, TOPIC)
    for partition in (0, 1):
        for n in range(6):
            request = GenerationRequest(request_id=f"r-{partition}-{n}", prompt="a red chair")
            consumer.append(request.request_id.encode(), codec.encode(request), partition=partition)
    store: ObjectStore = MemoryStore({})  # type: ignore[assignment]
    parts = assemble(
        settings,
        worker_id="w",
        host="h",
        engine=IdleEngine(),
        store=store,
        encode=lambda image, fmt: b"",  # type: ignore[arg-type,return-value]
        hooks=WorkerHooks(Metrics(), worker_id="w", host="h", group_id="g"),
        seams=WorkerSeams(consumer_factory=consumer.configured, sender_factory=results.configured),
    )
    return parts, consumer, results


def on_the_gpu(parts: WorkerParts) -> dict[tuple[int, int], WorkItem]:
    """Every waiting item, taken by the "GPU": in flight, not durable."""
    parts.loop.work.flush()
    items = {}
    while (batch := parts.loop.work.take(timeout=0.0)) is not None:
        items |= {(i.record.partition, i.record.offset): i for i in batch.items}
    return items


def make_durable(parts: WorkerParts, items: list[WorkItem]) -> None:
    for item in items:
        summary = OutcomeSummary("SUCCEEDED", item.request.request_id, "default")
        parts.loop.events.durable(item.ticket, summary)
    parts.loop.serve_outputs(0.0)  # the loop has heard of them before anything else happens


def past_start(consumer: MemoryConsumer) -> dict[int, int]:
    """Committed offsets past each partition's start (committing offset 0 moves nothing)."""
    return {partition: offset for partition, offset in consumer.committed_offsets.items() if offset}


def test_the_first_poll_assigns_every_partition_and_admits_their_records(worker: Any) -> None:
    parts, consumer, _ = worker
    assert parts.loop.life.phase is Phase.JOINING
    parts.loop.step()
    assert sorted(parts.loop.tracker.partitions()) == [(TOPIC, 0), (TOPIC, 1)]
    assert parts.loop.life.phase is Phase.READY  # the first assignment: a member, ready
    assert set(consumer.positions) == {0, 1}
    assert len(on_the_gpu(parts)) == 12


def test_a_revoke_commits_what_is_durable_and_nothing_else(worker: Any) -> None:
    parts, consumer, _ = worker
    parts.loop.step()
    gpu = on_the_gpu(parts)
    # Partition 0: offsets 0-2 and 4 durable, 3 and 5 still generating.
    make_durable(parts, [gpu[(0, n)] for n in (0, 1, 2, 4)] + [gpu[(1, 0)]])
    consumer.revoke([0])
    parts.loop.step()
    assert past_start(consumer) == {0: 3}  # the low-water mark of 0; nothing of 1 (not revoked)
    assert (TOPIC, 0) not in parts.loop.tracker.partitions()
    assert 0 not in consumer.positions


def test_a_revoke_drops_waiting_work_of_those_partitions_only(worker: Any) -> None:
    parts, consumer, _ = worker
    parts.loop.step()
    consumer.revoke([1])
    parts.loop.step()
    assert {p for p, _ in on_the_gpu(parts)} == {0}
    assert past_start(consumer) == {}  # nothing of 1 was durable


def test_a_lost_partition_commits_nothing(worker: Any) -> None:
    parts, consumer, _ = worker
    parts.loop.step()
    gpu = on_the_gpu(parts)
    make_durable(parts, [gpu[(0, n)] for n in range(6)] + [gpu[(1, n)] for n in range(2)])
    consumer.lose([0])
    parts.loop.step()
    parts.loop.commit_now()
    assert past_start(consumer) == {1: 2}  # another member may own 0 already


def test_a_completion_for_a_partition_no_longer_owned_is_never_committed(worker: Any) -> None:
    parts, consumer, _ = worker
    parts.loop.step()
    gpu = on_the_gpu(parts)
    make_durable(parts, [gpu[(0, 0)]])
    consumer.revoke([0])
    parts.loop.step()
    assert past_start(consumer) == {0: 1}
    make_durable(parts, [gpu[(0, n)] for n in range(1, 6)])  # finished after the revoke
    parts.loop.step()
    parts.loop.commit_now()
    assert past_start(consumer) == {0: 1}
    consumer.assign([0])  # back again: it restarts from the committed offset, from scratch
    parts.loop.step()
    make_durable(parts, [gpu[(0, n)] for n in range(1, 6)])  # stale tickets of the old owner
    parts.loop.step()
    parts.loop.commit_now()
    assert past_start(consumer) == {0: 1}


def test_an_undecodable_record_is_dead_lettered_then_committed(worker: Any) -> None:
    parts, consumer, results = worker
    consumer.log[0] = []  # partition 0 holds only the broken record
    consumer.append(b"k", b"\x00not avro", partition=0)
    parts.loop.step()
    parts.loop.serve_outputs(0.0)
    parts.loop.commit_now()
    # The key names the request: a FAILED result too, beside the dead letter.
    assert sorted(t for t, _, _ in results.records) == [
        "streamgen.dead-letter",
        "streamgen.results",
    ]
    assert past_start(consumer) == {0: 1}


def test_stopping_commits_what_is_durable_and_nothing_else(worker: Any) -> None:
    parts, consumer, _ = worker
    parts.loop.step()
    gpu = on_the_gpu(parts)
    make_durable(parts, [gpu[(0, 0)], gpu[(0, 1)], gpu[(1, 1)]])
    parts.loop.close_out(flush_timeout_s=0.0)
    assert parts.loop.life.closing  # generation and the output threads' retries stop first
    assert past_start(consumer) == {0: 2}  # 1's offset 0 is not durable: nothing of 1


def test_a_partition_revoked_while_paused_is_resumed_when_it_comes_back(worker: Any) -> None:
    # The consumer keeps a pause flag across revoke and re-assign, as librdkafka does: the
    # worker must give a new assignment its own state, here "not paused" (issue 22).
    parts, consumer, _ = worker
    parts.loop.step()
    parts.loop.pauses.set_paused(True)
    consumer.revoke([1])
    parts.loop.step()
    parts.loop.pauses.set_paused(False)
    assert consumer.paused == {1}  # no longer ours: left as it was
    consumer.assign([1])
    parts.loop.step()
    assert (TOPIC, 1) in parts.loop.tracker.partitions()
    assert consumer.paused == set()


@pytest.mark.parametrize("closing", [False, True])
def test_a_revoke_gives_in_flight_work_a_grace_unless_the_worker_is_closing(
    worker: Any, monkeypatch: pytest.MonkeyPatch, closing: bool
) -> None:
    """The revoke of the worker's own close (after a second SIGTERM, say) waited the grace for
    work that could no longer finish: 5 s more on a stop meant to be at once (seen from the
    outside, issue 22). Counted by the grace loop's polls of the producer, not by time."""
    parts, consumer, results = worker
    parts.loop.step()
    assert on_the_gpu(parts)  # taken by the "GPU", never made durable
    polls: list[float] = []
    monkeypatch.setattr(results, "poll", lambda timeout=0.0: polls.append(timeout))
    if closing:
        parts.loop.close_out(flush_timeout_s=0.0)
    polls.clear()
    consumer.revoke([0, 1])
    consumer.consume(1, 0)  # the revoke callback runs inside the consumer's poll
    assert (TOPIC, 0) not in parts.loop.tracker.partitions()
    assert (len(polls) == 0) is closing
