"""The worker's seams (``WorkerSeams``): what is passed in is what the assembled worker uses.

The in-memory clients carry the records; the clock decides, at intake, whether a request's
deadline has passed: a deadline years ahead of the wall clock, behind the seam's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamgen.configuration import load_settings
from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.store.base import ObjectStore
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.assembly import WorkerParts, assemble
from streamgen.worker.clients import Clock, WorkerSeams
from tests.support.idle_engine import IdleEngine
from tests.support.memory_kafka import MemoryConsumer, MemoryResults
from tests.support.memory_store import MemoryStore

TOPIC = "streamgen.requests"
DEADLINE = datetime(2040, 1, 1, tzinfo=UTC)


def assembled_with_one_request(
    tmp_path: Path, clock: Clock
) -> tuple[WorkerParts, MemoryConsumer, MemoryResults]:
    """The worker assembled with the in-memory clients and ``clock``, one request with
    ``DEADLINE`` waiting on its requests topic; its GPU thread is not started."""
    settings = load_settings({"store.url": f"file://{tmp_path}"}, env={})
    consumer, results = MemoryConsumer(TOPIC), MemoryResults()
    request = GenerationRequest(request_id="r-1", prompt="a red chair", deadline=DEADLINE)
    consumer.append(b"r-1", request_codec(settings.kafka, TOPIC).encode(request))
    store: ObjectStore = MemoryStore({})  # type: ignore[assignment]
    parts = assemble(
        settings,
        worker_id="w",
        host="h",
        engine=IdleEngine(),
        store=store,
        encode=lambda image, fmt: b"",  # type: ignore[arg-type,return-value]
        hooks=WorkerHooks(Metrics(), worker_id="w", host="h", group_id="g"),
        seams=WorkerSeams(
            consumer_factory=consumer.configured, sender_factory=results.configured, clock=clock
        ),
    )
    return parts, consumer, results


def outputs_after_one_poll(tmp_path: Path, clock: Clock) -> list[str]:
    """The topics of what the worker published after polling one request with ``DEADLINE``."""
    parts, consumer, results = assembled_with_one_request(tmp_path, clock)
    parts.loop.step()
    parts.output_pool.shutdown()
    assert consumer.positions == {0: 1}, "the in-memory consumer did not serve the request"
    return sorted(topic for topic, _, _ in results.records)


def test_a_request_past_its_deadline_by_the_seams_clock_is_failed_at_intake(
    tmp_path: Path,
) -> None:
    topics = outputs_after_one_poll(tmp_path, clock=lambda: datetime(2041, 1, 1, tzinfo=UTC))
    settings = load_settings({}, env={})
    assert topics == sorted([settings.topics.results, settings.topics.dead_letter])


@pytest.mark.parametrize("now", [datetime(2039, 12, 31, tzinfo=UTC), None])
def test_a_request_before_its_deadline_is_admitted(tmp_path: Path, now: datetime | None) -> None:
    """By the seam's clock, and by the wall clock the default seams read."""
    clock = WorkerSeams().clock if now is None else (lambda: now)
    assert outputs_after_one_poll(tmp_path, clock) == []


def test_the_gpu_thread_checks_deadlines_by_the_seams_clock_too(tmp_path: Path) -> None:
    """Admitted at intake (2039), expired when its batch comes up (2041): failed there, never
    generated (an IdleEngine asked to generate would be a fatal error)."""
    readings = iter([datetime(2039, 12, 31, tzinfo=UTC)])
    late = datetime(2041, 1, 1, tzinfo=UTC)
    parts, _, results = assembled_with_one_request(tmp_path, lambda: next(readings, late))
    settings = load_settings({}, env={})
    parts.loop.step()
    assert results.records == [] and parts.loop.tracker.outstanding() == 1  # admitted
    parts.stage.start()
    for _ in range(2000):  # the batcher's wait, then the GPU thread's turn
        parts.loop.step()
        if parts.loop.tracker.outstanding() == 0 or parts.loop.life.fatal is not None:
            break
    parts.loop.close_out(flush_timeout_s=0.0)
    assert parts.loop.life.fatal is None
    assert sorted(topic for topic, _, _ in results.records) == sorted(
        [settings.topics.results, settings.topics.dead_letter]
    )
