"""The local feed runs the worker's own loop on in-memory Kafka clients: every record ends
with one durable outcome, in the run's report and as result events."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from benchmarks.local_source import LocalFeed, TimedRecord
from benchmarks.noop_engine import NoopEngine
from benchmarks.worker_run import ProgressHooks
from streamgen.configuration import load_settings
from streamgen.contracts.codec import request_codec
from streamgen.contracts.progress import progress_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.store.encode import encode_image
from streamgen.store.file_store import FileStore
from streamgen.telemetry.progress_metrics import ProgressMetrics
from streamgen.worker.progress_publisher import ProgressPublisher
from tests.support.memory_kafka import MemoryProducer


def test_every_record_ends_durable_including_a_broken_one(tmp_path: Path) -> None:
    settings = load_settings(
        {"engine.models": {"noop": "(no-op engine)"}, "worker.max_in_flight": 8}, env={}
    )
    codec = request_codec(settings.kafka, "local.requests")
    now = time.monotonic()
    records = [
        TimedRecord(f"r{i}".encode(), codec.encode(request), due=now + 0.01 * i)
        for i, request in enumerate(
            GenerationRequest(request_id=f"r{i}", prompt="p", model="noop", width=64, height=64)
            for i in range(20)
        )
    ]
    records.append(TimedRecord(b"bad", b"\x00not avro", due=now))
    hooks = ProgressHooks(settings, worker_id="local")
    feed = LocalFeed(
        settings,
        engine=NoopEngine(max_batch_size=4, image_size=8),
        store=FileStore(str(tmp_path)),
        encode=encode_image,
        hooks=hooks,
        max_batch_size=lambda shape: 2,
    )
    run = feed.run(records, timeout_s=60)
    assert len(run.summaries) == 21
    assert [s.request_id for s in run.failures()] == ["bad"]
    assert max(hooks.batch_sizes) <= 2  # the benchmark's batch limit, not the engine's
    results = [value for topic, _, value in run.results.records if topic == "local.results"]
    assert len(results) == 21  # the broken record's key names its request: FAILED too
    # Paced, not dumped: nothing became durable before it was due (an ordering, not a timing:
    # on a loaded machine records may come late, never early).
    due = {record.key.decode(): record.due for record in records}
    assert all(at >= due[summary.request_id] for at, summary in run.summaries)
    assert type(hooks).durable is ProgressHooks.durable and "durable" not in vars(hooks)


def test_with_a_progress_publisher_each_request_reports_its_stages(tmp_path: Path) -> None:
    """The worker's own threads report (the loop: picked up; the GPU thread: batch started;
    the output pool: stored) through the real publisher, closed after the run."""
    settings = load_settings(
        {"engine.models": {"noop": "(no-op engine)"}, "worker.progress": True}, env={}
    )
    codec = request_codec(settings.kafka, "local.requests")
    ids = [f"p{i}" for i in range(6)]
    requests = [GenerationRequest(request_id=i, prompt="p", model="noop") for i in ids]
    producer = MemoryProducer()
    registry = CollectorRegistry()
    progress = progress_codec(settings.kafka, "local.progress")
    publisher = ProgressPublisher(
        producer,
        topic="local.progress",
        worker_id="local",
        encode=progress.encode,
        metrics=ProgressMetrics(registry),
    )
    publisher.start()
    feed = LocalFeed(
        settings,
        engine=NoopEngine(max_batch_size=4, image_size=8),
        store=FileStore(str(tmp_path)),
        encode=encode_image,
        hooks=ProgressHooks(settings, worker_id="local"),
        progress=publisher,
    )
    feed.run([TimedRecord(r.request_id.encode(), codec.encode(r)) for r in requests], timeout_s=60)
    assert not publisher.is_alive()  # closed by the run, its events delivered
    stages: dict[str, list[str]] = {i: [] for i in ids}
    for _, key, value in producer.records:
        event = progress.decode(value)
        assert key == event.request_id.encode()
        stages[event.request_id].append(event.stage)
    # The no-op engine has no denoising steps to report.
    assert stages == {i: ["PICKED_UP", "BATCH_STARTED", "STORED"] for i in ids}
    published = registry.get_sample_value("streamgen_progress_events_published_total")
    assert published == 3 * len(ids)
