"""Cancellation in the worker: the cancel records, the bounded set of cancelled ids, and what a
cancelled request ends with at intake, when its batch comes up, and in a running batch."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streamgen.configuration import load_settings
from streamgen.contracts.cancel import CancelRecord, MalformedCancel, decode_cancel, encode_cancel
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import CancelCheck, GenerationOutcome, StepObserver
from streamgen.errors import RequestCancelled
from streamgen.store.base import ObjectStore
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.assembly import WorkerParts, assemble
from streamgen.worker.cancels import CancelSet
from streamgen.worker.clients import WorkerSeams
from tests.support.idle_engine import IdleEngine
from tests.support.memory_kafka import MemoryConsumer, MemoryResults
from tests.support.memory_store import MemoryStore

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TOPIC = "streamgen.requests"


# -- the record --------------------------------------------------------------------------------


def test_a_cancel_record_round_trips_and_a_tombstone_withdraws() -> None:
    cancel = CancelRecord("req-1", NOW, "customer left")
    key, value = encode_cancel(cancel)
    assert key == b"req-1"
    assert json.loads(value) == {"requested_at": NOW.isoformat(), "reason": "customer left"}
    assert decode_cancel(key, value) == cancel
    assert decode_cancel(key, None) is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (None, b"{}", "has no key"),
        (b"\xff", b"{}", "not UTF-8"),
        (b"no spaces allowed", b"{}", "not a request id"),
        (b"r", b"not json", "not JSON"),
        (b"r", b"[1]", "not a JSON object"),
        (b"r", b"{}", "requested_at is missing"),
        (b"r", b'{"requested_at": "yesterday"}', "not an ISO 8601 time"),
        (b"r", b'{"requested_at": "2030-01-01T00:00:00"}', "UTC offset"),
        (b"r", b'{"requested_at": "2030-01-01T00:00:00Z", "reason": 3}', "reason is not text"),
    ],
)
def test_a_malformed_cancel_says_what_is_wrong(
    key: bytes | None, value: bytes, message: str
) -> None:
    with pytest.raises(MalformedCancel, match=message):
        decode_cancel(key, value)


# -- the set -----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_malformed_records_are_logged_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = WorkerHooks(
        Metrics(CollectorRegistry(), gpu=False), worker_id="w", host="h", group_id="g"
    )
    cancels = CancelSet(
        max_ids=10, max_age_s=60, now=Clock(), on_malformed=hooks.cancel_record_skipped
    )
    with caplog.at_level(logging.WARNING):
        cancels.apply(b"r-1", b"garbage", "cancels/0@7")
    cancels.apply(*encode_cancel(CancelRecord("r-2", NOW)), "cancels/0@8")
    assert "cancels/0@7" in caplog.text and "not JSON" in caplog.text
    assert cancels.skipped == 1 and not cancels.cancelled("r-1") and cancels.cancelled("r-2")
    registry = hooks.metrics.registry
    assert registry.get_sample_value("streamgen_cancel_records_skipped_total") == 1
    cancels.apply(b"r-2", None, "cancels/0@9")  # a tombstone withdraws the cancel
    assert not cancels.cancelled("r-2")


def test_a_cancel_is_forgotten_past_the_age_bound() -> None:
    clock = Clock()
    cancels = CancelSet(max_ids=10, max_age_s=60, now=clock)
    cancels.add("old", NOW - timedelta(seconds=61))  # already too old when learnt
    cancels.add("r", NOW)
    assert not cancels.cancelled("old") and cancels.cancelled("r")
    clock.now = NOW + timedelta(seconds=61)
    assert not cancels.cancelled("r") and len(cancels) == 0


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    max_ids=st.integers(1, 8),
    events=st.lists(
        st.tuples(st.sampled_from("abcdefghij"), st.integers(0, 100), st.integers(0, 30)),
        max_size=60,
    ),
)
def test_the_set_holds_at_most_max_ids_and_the_latest_cancels_it_may(
    max_ids: int, events: list[tuple[str, int, int]]
) -> None:
    """(id, requested seconds after NOW, seconds the clock moves on): whatever the order, the
    set never holds more than max_ids, always answers for the cancel just learnt if it is
    young enough, and otherwise only for an earlier cancel of the same id that still is."""
    clock = Clock()
    cancels = CancelSet(max_ids=max_ids, max_age_s=50, now=clock)
    learnt: dict[str, list[datetime]] = {}
    for request_id, at, tick in events:
        clock.now += timedelta(seconds=tick)
        requested_at = NOW + timedelta(seconds=at)
        cancels.add(request_id, requested_at)
        learnt.setdefault(request_id, []).append(requested_at)
        assert len(cancels) <= max_ids
        oldest = clock.now - timedelta(seconds=50)
        if requested_at >= oldest:
            assert cancels.cancelled(request_id)
        elif cancels.cancelled(request_id):
            assert max(learnt[request_id]) >= oldest
    for request_id in "abcdefghij":
        if cancels.cancelled(request_id):
            assert request_id in {e[0] for e in events}


# -- the worker --------------------------------------------------------------------------------


class SteppingEngine(IdleEngine):
    """Plays a batch of ``steps`` denoising steps: asks ``cancelled`` before each, as the real
    engine does (streamgen/engine/denoise.py), and calls ``during`` after the first."""

    def __init__(self, steps: int, during: Any) -> None:
        self.steps, self.during = steps, during
        self.rows_per_step: list[int] = []

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        assert cancelled is not None
        alive = list(requests)
        gone: dict[str, RequestCancelled] = {}
        for step in range(self.steps):
            for r in [r for r in alive if cancelled(r)]:
                alive.remove(r)
                gone[r.request_id] = RequestCancelled("request was cancelled")
            self.rows_per_step.append(len(alive))
            if step == 0:
                self.during()
        return [GenerationOutcome(r, seed=1, error=gone.get(r.request_id)) for r in requests]


def worker(tmp_path: Path, engine: IdleEngine, ids: list[str]) -> tuple[WorkerParts, Any]:
    settings = load_settings({"store.url": f"file://{tmp_path}"}, env={})
    consumer, results = MemoryConsumer(TOPIC), MemoryResults()
    codec = request_codec(settings.kafka, TOPIC)
    for request_id in ids:
        consumer.append(request_id.encode(), codec.encode(GenerationRequest(request_id, "p")))
    store: ObjectStore = MemoryStore({})  # type: ignore[assignment]
    parts = assemble(
        settings,
        worker_id="w",
        host="h",
        engine=engine,
        store=store,
        encode=lambda image, fmt: b"",  # type: ignore[arg-type,return-value]
        hooks=WorkerHooks(Metrics(), worker_id="w", host="h", group_id="g"),
        seams=WorkerSeams(consumer_factory=consumer.configured, sender_factory=results.configured),
    )
    decode = result_codec(settings.kafka, settings.topics.results).decode

    def outcomes() -> dict[str, tuple[str, str, str]]:
        """request id -> (status, error code, stage); dead letters under their topic name."""
        seen = {}
        for topic, key, value in results.records:
            assert topic == settings.topics.results, "a cancelled request was dead-lettered"
            result = decode(value)
            error = result.error
            seen[key.decode()] = (
                result.status,
                error.code if error else "",
                error.stage if error else "",
            )
        return seen

    return parts, outcomes


def test_a_request_cancelled_before_it_arrives_is_never_batched(tmp_path: Path) -> None:
    parts, outcomes = worker(tmp_path, IdleEngine(), ["r-1"])
    parts.cancels.add("r-1", datetime.now(UTC))
    parts.loop.step()
    parts.output_pool.shutdown()
    assert outcomes() == {"r-1": ("FAILED", "CANCELLED", "intake")}
    assert parts.loop.tracker.outstanding() == 0, "its ticket completed: the offset commits"
    parts.loop.step()  # the loop hands the durable outcome to the metrics
    registry = parts.hooks.metrics.registry
    assert registry.get_sample_value("streamgen_requests_cancelled_total", {"stage": "intake"}) == 1
    failed = {"model": "default", "code": "CANCELLED", "stage": "intake"}
    assert registry.get_sample_value("streamgen_requests_failed_total", failed) == 1


def test_a_cancel_arriving_while_its_batch_runs_drops_the_row_at_the_next_step(
    tmp_path: Path,
) -> None:
    cancels: list[CancelSet] = []
    engine = SteppingEngine(3, during=lambda: cancels[0].add("r-2", datetime.now(UTC)))
    parts, outcomes = worker(tmp_path, engine, ["r-1", "r-2", "r-3"])
    cancels.append(parts.cancels)
    parts.stage.start()
    for _ in range(5000):
        parts.loop.step()
        if len(outcomes()) == 3 or parts.loop.life.fatal is not None:
            break
    parts.loop.close_out(flush_timeout_s=0.0)
    parts.stage.join(10)
    assert engine.rows_per_step == [3, 2, 2], "r-2 left at the step after the cancel"
    assert outcomes()["r-2"] == ("FAILED", "CANCELLED", "generate")
