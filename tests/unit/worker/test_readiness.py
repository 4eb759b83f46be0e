"""Readiness before membership: the engine warms up before the worker subscribes, and /ready
says 503 until the worker is warmed up and in the group, 200 then, 503 again once stopping."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamgen.configuration import load_settings
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import GenerationOutcome, Shape, shape_of
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker import run
from streamgen.worker.cancel_follower import CancelFollower
from streamgen.worker.cancels import CancelSet
from streamgen.worker.clients import PRODUCTION_SEAMS
from streamgen.worker.lifecycle import Lifecycle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()


class WarmingEngine:
    """Records its warm-up, and what /ready said while it ran."""

    def __init__(self, events: list[str], port: int) -> None:
        self.events = events
        self.port = port
        self.shapes: list[Shape] = []
        self.during: tuple[int, str] | None = None

    def shape_of(self, request: GenerationRequest) -> Shape:
        return shape_of(request, "dpmpp_2m")

    def max_batch_size(self, shape: Shape) -> int:
        return 4

    def generate(
        self, requests: Sequence[GenerationRequest], *, cancelled: Any = None, on_step: Any = None
    ) -> list[GenerationOutcome]:
        raise AssertionError("no request before the group is joined")

    def warm_up(self, shapes: Iterable[Shape]) -> dict[Shape, float]:
        self.shapes = list(shapes)
        self.during = probe(self.port)
        self.events.append("warm_up")
        return dict.fromkeys(self.shapes, 0.0)


Started = tuple[WorkerHooks, WarmingEngine, list[str], Lifecycle]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterable[Started]:
    events: list[str] = []
    monkeypatch.setattr(run, "check_broker", lambda *a: events.append("check_broker"))
    monkeypatch.setattr(run, "check_record_size_limits", lambda *a: None)
    # No cancels topic to follow: a follower never started, as where the topic is missing.
    unstarted = CancelFollower(
        None,  # type: ignore[arg-type]
        "cancels",
        CancelSet(max_ids=1, max_age_s=1.0),
        stopped=lambda timeout: True,
    )
    monkeypatch.setattr(run, "_follow_cancels", lambda *a: unstarted)
    monkeypatch.setattr(run, "check_store", lambda *a, **k: events.append("check_store"))
    # assemble() is where the consumer subscribes to the requests topic.
    monkeypatch.setattr(run, "assemble", lambda *a, **k: events.append("subscribe"))
    port = free_port()
    settings = load_settings(
        env={
            "STREAMGEN_ENGINE_MODELS": "sd15=/models/sd15",
            "STREAMGEN_ENGINE_WARMUP_SHAPES": "512x512x30,1024x1024x20:euler",
            "STREAMGEN_WORKER_METRICS_PORT": str(port),
        }
    )
    hooks = WorkerHooks(
        Metrics(CollectorRegistry(), gpu=False),
        worker_id="w",
        host="h",
        group_id="g",
        metrics_port=port,
    )
    engine = WarmingEngine(events, port)
    life = Lifecycle()
    hooks.serve(ready=life.readiness)
    assert probe(port) == (503, "starting")
    store: Any = object()  # never used: check_store and assemble are replaced
    run._start(settings, "w", "h", engine, store, lambda *a: b"", hooks, PRODUCTION_SEAMS, life)
    yield hooks, engine, events, life
    hooks.stopped()


def test_the_engine_warms_up_every_shape_before_the_worker_subscribes(
    started: Started,
) -> None:
    _, engine, events, _ = started
    assert events == ["check_broker", "check_store", "warm_up", "subscribe"]
    assert [(s.model, s.width, s.steps, s.scheduler) for s in engine.shapes] == [
        ("default", 512, 30, "dpmpp_2m"),
        ("default", 1024, 20, "euler"),
    ]
    assert engine.during == (503, "warming up")


def test_ready_only_once_warmed_up_and_assigned_and_not_after_stopping(
    started: Started,
) -> None:
    _, engine, _, life = started
    assert probe(engine.port) == (503, "joining the consumer group")
    life.joined()  # the first assignment (test_rebalance: even an empty one) calls this
    assert probe(engine.port) == (200, "ready")
    with urllib.request.urlopen(f"http://127.0.0.1:{engine.port}/metrics", timeout=5) as r:
        assert b"streamgen_warmup_seconds" in r.read()
    life.request_stop()  # SIGTERM: not ready from that moment, before the drain begins
    assert probe(engine.port) == (503, "stopping")


def test_the_warm_up_time_is_a_metric(
    started: Started,
) -> None:
    hooks, _, _, _ = started
    seconds = hooks.metrics.registry.get_sample_value("streamgen_warmup_seconds")
    assert seconds is not None and seconds >= 0.0
    assert "streamgen_warmup_seconds" in hooks.metrics.series_names()
