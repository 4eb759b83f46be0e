"""Progress events on the real broker and MinIO (worker.progress): each request's events arrive
in the order it passed the stages, keyed by its id; with progress off the topic stays empty."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from dataclasses import replace

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streamgen.contracts.progress import GenerationProgress, progress_codec
from streamgen.settings import Settings
from tests.integration.worker.conftest import (
    make_request,
    publish,
    serve,
    with_worker,
    worker_thread,
)
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

STEPS = 3


def read_progress(settings: Settings) -> list[tuple[bytes | None, GenerationProgress]]:
    codec = progress_codec(settings.kafka, settings.topics.progress)
    messages = consume_all(settings.kafka.bootstrap_servers, settings.topics.progress)
    return [(m.key(), codec.decode(m.value())) for m in messages]


def test_each_request_reports_its_stages_in_order(worker_settings: Settings) -> None:
    # Every step reported (interval 0), so the sequence is exact whatever the machine's speed.
    settings = with_worker(worker_settings, progress=True, progress_interval_s=0.0)
    requests = [make_request(i, steps=STEPS) for i in range(5)]
    publish(settings, requests)
    results = serve(settings, expected=len(requests))
    assert {r.status for r in results} == {"SUCCEEDED"}

    # The worker stopped after its drain, which flushes the progress producer: all are there.
    by_request: dict[str, list[GenerationProgress]] = defaultdict(list)
    for key, event in read_progress(settings):
        assert key == event.request_id.encode()  # keyed by request id: one partition each
        by_request[event.request_id].append(event)
    assert set(by_request) == {r.request_id for r in requests}
    worker_ids = {results[0].worker.worker_id}
    for request in requests:
        events = by_request[request.request_id]
        stages = [(e.stage, e.step, e.steps) for e in events]
        assert stages == [
            ("PICKED_UP", 0, 0),
            ("BATCH_STARTED", 0, 0),
            *(("DENOISING", step, STEPS) for step in range(1, STEPS + 1)),
            ("STORED", 0, 0),
        ], request.request_id
        assert {e.worker_id for e in events} == worker_ids
        stamps = [e.timestamp for e in events]
        assert stamps == sorted(stamps)


def test_with_a_registry_events_are_registered_and_framed_like_results(
    worker_settings: Settings, schema_registry: str
) -> None:
    """kafka.schema_registry_url set: the worker registers GenerationProgress under
    <topic>-value at start, as it does the result, and frames every event with its id."""
    settings = with_worker(worker_settings, progress=True, progress_interval_s=0.0)
    settings = replace(settings, kafka=replace(settings.kafka, schema_registry_url=schema_registry))
    requests = [make_request(i, steps=2) for i in range(2)]
    publish(settings, requests)
    serve(settings, expected=len(requests))

    registry = SchemaRegistryClient({"url": schema_registry})
    (version,) = registry.get_versions(f"{settings.topics.progress}-value")
    schema_id = registry.get_version(f"{settings.topics.progress}-value", version).schema_id
    raw = consume_all(settings.kafka.bootstrap_servers, settings.topics.progress)
    assert len(raw) == len(requests) * (3 + 2)  # picked up, batch started, 2 steps, stored
    assert {(m.value() or b"")[:5] for m in raw} == {b"\x00" + schema_id.to_bytes(4, "big")}
    stages = [event.stage for _, event in read_progress(settings)]  # decoded by the registry
    assert stages.count("STORED") == len(requests)


def test_with_progress_off_nothing_is_published(worker_settings: Settings) -> None:
    assert not worker_settings.worker.progress  # the default
    requests = [make_request(i) for i in range(3)]
    publish(worker_settings, requests)
    results = serve(worker_settings, expected=len(requests))
    assert {r.status for r in results} == {"SUCCEEDED"}
    assert read_progress(worker_settings) == []


def test_submit_wait_shows_each_requests_progress(worker_settings: Settings) -> None:
    """The real command line, its own process: the progress lines on stderr, in order, and the
    results as before."""
    settings = with_worker(
        worker_settings, progress=True, progress_interval_s=0.0, worker_id="progress-worker"
    )
    t = settings.topics
    flags = ["--bootstrap-servers", settings.kafka.bootstrap_servers, "--topic", t.requests]
    flags += ["--results-topic", t.results, "--set", f"topics.progress={t.progress}"]
    flags += ["--prompt", "a kite", "--count", "2", "--model", "tiny", "--width", "64"]
    flags += ["--height", "64", "--steps", str(STEPS), "--wait", "--timeout", "150"]
    with worker_thread(settings) as worker:
        done = subprocess.run(
            [sys.executable, "-m", "streamgen", "submit", *flags],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert worker.stop_and_wait() == 0
    assert done.returncode == 0, done.stderr
    ids = done.stdout.splitlines()[:2]
    assert "succeeded: 2" in done.stdout.splitlines()
    for request_id in ids:
        shown = [line for line in done.stderr.splitlines() if line.startswith(f"{request_id}: ")]
        stages = ["picked up", "batch started"]
        stages += [f"denoising {step}/{STEPS}" for step in range(1, STEPS + 1)] + ["stored"]
        assert shown == [f"{request_id}: {stage} [progress-worker]" for stage in stages]
