"""Fixtures for worker tests: the tiny model on disk, a worker running in a thread, and
helpers to publish requests and read what the worker produced — all against the real stack."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from PIL import Image

from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.dead_letter import header_map
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult
from streamgen.engine import DiffusionEngine
from streamgen.engine.model_init import write_model
from streamgen.settings import Settings, WorkerSettings
from streamgen.store import open_store
from streamgen.worker.run import run_worker
from tests.support.kafka import consume_all


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny"
    write_model("tiny", out)
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A tiny random pipeline of an architecture (``tiny-flux-dev``, ``tiny-sd3-large``, ...),
    written once per session, wherever a family's tests ask for it."""
    written: dict[str, Path] = {}

    def model(arch: str) -> Path:
        if arch not in written:
            written[arch] = write_model(arch, tmp_path_factory.mktemp("models") / arch)
        return written[arch]

    return model


def with_models(settings: Settings, models: dict[str, str]) -> Settings:
    """``settings`` serving exactly ``models`` (name -> path, with any ``#preset``)."""
    return replace(settings, engine=replace(settings.engine, models=models))


@pytest.fixture
def worker_settings(stack_settings: Settings, tiny_model: Path) -> Settings:
    """Stack settings with the tiny model, a group of its own and short timings for tests."""
    w = stack_settings.worker
    return replace(
        stack_settings,
        engine=replace(
            stack_settings.engine, models={"tiny": str(tiny_model)}, device="cpu", max_batch_size=4
        ),
        worker=replace(
            w,
            group_id=f"streamgen-test-{uuid.uuid4().hex[:8]}",
            max_wait_ms=300,
            commit_interval_ms=200,
            retry_initial_ms=100,
            retry_max_ms=1000,
            drain_timeout_s=30.0,
        ),
    )


def make_request(i: int = 0, **fields: Any) -> GenerationRequest:
    base: dict[str, Any] = {
        "request_id": f"req-{uuid.uuid4().hex[:10]}-{i}",
        "prompt": f"a product photo number {i}",
        "model": "tiny",
        "width": 64,
        "height": 64,
        "steps": 2,
        "seed": 1000 + i,
    }
    base.update(fields)
    return GenerationRequest(**base)


def publish(settings: Settings, requests: list[GenerationRequest]) -> None:
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    for request in requests:
        producer.produce(
            settings.topics.requests, key=request.request_id.encode(), value=codec.encode(request)
        )
    assert producer.flush(30) == 0


def publish_raw(settings: Settings, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    for key, value in records:
        producer.produce(settings.topics.requests, key=key, value=value)
    assert producer.flush(30) == 0


def read_results(
    settings: Settings, expected: int | None = None, timeout: float = 60.0
) -> list[GenerationResult]:
    codec = result_codec(settings.kafka, settings.topics.results)
    messages = consume_all(
        settings.kafka.bootstrap_servers,
        settings.topics.results,
        expected=expected,
        timeout=timeout,
    )
    return [codec.decode(m.value()) for m in messages]


def read_dead_letters(
    settings: Settings, expected: int | None = None, timeout: float = 30.0
) -> list[tuple[bytes | None, bytes | None, dict[str, str]]]:
    messages = consume_all(
        settings.kafka.bootstrap_servers,
        settings.topics.dead_letter,
        expected=expected,
        timeout=timeout,
    )
    return [(m.key(), m.value(), header_map(m.headers())) for m in messages]


def committed_offsets(settings: Settings) -> dict[int, int]:
    """The group's committed offset per requests partition (0 when none: nothing consumed)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": settings.worker.group_id,
        }
    )
    try:
        partitions = [
            TopicPartition(settings.topics.requests, p) for p in range(settings.topics.partitions)
        ]
        committed = consumer.committed(partitions, timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in committed}
    finally:
        consumer.close()


def end_offsets(settings: Settings) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "streamgen-probe"}
    )
    try:
        return {
            p: consumer.get_watermark_offsets(
                TopicPartition(settings.topics.requests, p), timeout=10
            )[1]
            for p in range(settings.topics.partitions)
        }
    finally:
        consumer.close()


@dataclass
class RunningWorker:
    thread: threading.Thread
    stop: threading.Event
    exit_code: list[int] = field(default_factory=list)

    def stop_and_wait(self, timeout: float = 60.0) -> int:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        return self.exit_code[0]


@contextmanager
def worker_thread(settings: Settings, **kwargs: Any) -> Iterator[RunningWorker]:
    """Run ``run_worker`` in a thread of the test process; stop and join on exit."""
    stop = threading.Event()
    codes: list[int] = []

    def target() -> None:
        codes.append(run_worker(settings, install_signal_handlers=False, stop=stop, **kwargs))

    thread = threading.Thread(target=target, name="worker-under-test", daemon=True)
    running = RunningWorker(thread, stop, codes)
    thread.start()
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop_and_wait()


def with_worker(settings: Settings, **changes: Any) -> Settings:
    worker: WorkerSettings = replace(settings.worker, **changes)
    return replace(settings, worker=worker)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def settings_env(settings: Settings) -> dict[str, str]:
    """The STREAMGEN_* environment that reproduces ``settings`` in a child process."""
    import dataclasses

    env: dict[str, str] = {}
    for section in dataclasses.fields(settings):
        values = getattr(settings, section.name)
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            if isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, tuple):
                value = ",".join(map(str, value))  # topics.lanes: each Lane as NAME=MIN_SHARE
            env[f"STREAMGEN_{section.name}_{f.name}".upper()] = str(value)
    return env


def all_committed(settings: Settings) -> bool:
    """Has the group committed every partition to its end (empty partitions need nothing)?"""
    committed = committed_offsets(settings)
    return committed == end_offsets(settings)


def serve(settings: Settings, expected: int) -> list[GenerationResult]:
    """Run a worker until ``expected`` results are on the results topic (earlier runs' too) and
    every request is committed, then stop it cleanly; the results."""
    with worker_thread(settings) as worker:
        results = read_results(settings, expected=expected, timeout=120)
        assert wait_until(lambda: all_committed(settings), 30)
        assert worker.stop_and_wait() == 0
    return results


DeadLetter = tuple[bytes | None, bytes | None, dict[str, str]]


def publish_and_serve(
    settings: Settings, requests: list[GenerationRequest], *, dead_letters: int
) -> tuple[dict[str, GenerationResult], list[DeadLetter]]:
    """Publish ``requests``, run a worker until each has a result (``dead_letters`` of them a
    dead letter too) and every offset is committed, then stop it cleanly: the results by
    request id, and the dead letters."""
    publish(settings, requests)
    with worker_thread(settings) as worker:
        results = read_results(settings, expected=len(requests), timeout=180)
        dead = read_dead_letters(settings, expected=dead_letters)
        assert wait_until(lambda: all_committed(settings), 20)
        assert worker.stop_and_wait() == 0
    assert len(dead) == dead_letters
    return {r.request_id: r for r in results}, dead


def assert_stored_equals_alone(
    settings: Settings, results: dict[str, GenerationResult], requests: list[GenerationRequest]
) -> None:
    """What the worker stored for each of ``requests`` is what the engine makes of it alone,
    within one 8-bit level (the tolerance of batching on a CPU)."""
    store = open_store(settings.store)
    engine = DiffusionEngine(settings.engine)
    for request in requests:
        alone = engine.generate([request])[0]
        stored = results[request.request_id].images
        assert len(stored) == request.num_images
        for image, expected in zip(stored, alone.images, strict=True):
            got = np.asarray(Image.open(io.BytesIO(store.get(image.uri))), dtype=np.int16)
            assert got.shape == (request.height, request.width, 3)
            assert np.abs(got - np.asarray(expected, dtype=np.int16)).max() <= 1
