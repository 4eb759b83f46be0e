"""Benchmark 4 — latency under light load: one request every few seconds.

Each request is alone in its batch, so the batcher holds it for ``max_wait_ms`` before the GPU
starts: end-to-end latency (``created_at`` → result) should be about one generation alone plus
``max_wait_ms`` plus a few milliseconds of decode, store and publish. The run measures that at
each ``--max-wait-ms`` value on one loaded engine, beside the single-request generation time.

``--source kafka`` (default) starts the real local broker and MinIO-free file store and times
created_at → the result read back from the results topic; ``--source local`` feeds the worker's
stages from memory (for the GPU machine, which has no broker) and times created_at → the
result encoded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.local_source import LocalFeed, TimedRecord
from benchmarks.models import (
    MODEL,
    add_engine_arguments,
    model_dir,
    on_engine_thread,
    requests,
)
from benchmarks.report import environment, write_json
from benchmarks.worker_run import ProgressHooks
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import Engine
from streamgen.settings import EngineSettings, Settings, StoreSettings, WorkerSettings
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.storage import EncodeImage

__all__ = ["main", "percentile", "through_kafka"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from streamgen.engine.engine import DiffusionEngine

    report: dict[str, Any] = {"benchmark": "latency under light load", "settings": vars(args)}
    report["environment"] = environment(with_torch=True, with_stack=args.source == "kafka")
    engine = DiffusionEngine(
        EngineSettings(
            models={MODEL: str(model_dir(args))},
            device=args.device,
            dtype=args.dtype,
            max_batch_size=args.max_batch_size,
        )
    )
    alone = on_engine_thread(lambda: _generation_alone(engine, args))
    report["generation_alone_s"] = round(alone, 4)
    print(f"one request alone: {alone * 1000:.1f} ms (median of {args.alone_repeats})")
    rows = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as images:
        source = _kafka_source(stack) if args.source == "kafka" else None
        for max_wait_ms in args.max_wait_ms:
            settings = _settings(args, f"file://{images}/{max_wait_ms}", max_wait_ms)
            if source is not None:
                latencies = through_kafka(source, settings, engine, args)
            else:
                latencies = _through_local(settings, engine, args)
            rows.append(_row(max_wait_ms, latencies, alone))
            _print_row(rows[-1])
    report["rows"] = rows
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-latency", description=__doc__)
    add_engine_arguments(p, arch="tiny", size=64, steps=4)
    p.add_argument("--source", choices=("kafka", "local"), default="kafka")
    p.add_argument("--requests", type=int, default=10, help="per max_wait_ms value")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between requests")
    p.add_argument(
        "--max-wait-ms",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[50, 1000],
        help="comma-separated values to compare",
    )
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--alone-repeats", type=int, default=5)
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    return p


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


def _generation_alone(engine: Engine, args: argparse.Namespace) -> float:
    engine.generate(list(requests(1, args, tag="-warm")))
    times = []
    for i in range(args.alone_repeats):
        start = time.perf_counter()
        engine.generate(list(requests(1, args, tag=f"-alone{i}")))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _settings(args: argparse.Namespace, store_url: str, max_wait_ms: int) -> Settings:
    return Settings(
        store=StoreSettings(url=store_url),
        engine=EngineSettings(models={MODEL: str(model_dir(args))}, device=args.device),
        worker=WorkerSettings(
            group_id=f"bench-latency-{uuid.uuid4().hex[:8]}",
            max_wait_ms=max_wait_ms,
            commit_interval_ms=500,
        ),
    )


def _row(max_wait_ms: int, latencies: list[float], alone: float) -> dict[str, float]:
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "max_wait_ms": max_wait_ms,
        "requests": len(latencies),
        "p50_s": round(p50, 4),
        "p95_s": round(p95, 4),
        "max_s": round(max(latencies), 4),
        "p50_beyond_generation_s": round(p50 - alone, 4),
        "p95_beyond_generation_s": round(p95 - alone, 4),
    }


def _print_row(row: dict[str, float]) -> None:
    print(
        f"max_wait {row['max_wait_ms']:5d} ms: p50 {row['p50_s'] * 1000:7.1f} ms, "
        f"p95 {row['p95_s'] * 1000:7.1f} ms ({row['requests']} requests); beyond one "
        f"generation: p50 {row['p50_beyond_generation_s'] * 1000:6.1f} ms, "
        f"p95 {row['p95_beyond_generation_s'] * 1000:6.1f} ms",
        flush=True,
    )


# -- local source ----------------------------------------------------------------------------
def _through_local(settings: Settings, engine: Engine, args: argparse.Namespace) -> list[float]:
    from streamgen.store import open_store
    from streamgen.store.encode import encode_image

    codec = request_codec(settings.kafka, "local.requests")
    start_mono, start_wall = time.monotonic() + 0.5, time.time() + 0.5
    records = []
    for i, request in enumerate(requests(args.requests, args, tag=f"-{uuid.uuid4().hex[:6]}")):
        offset = i * args.interval
        created = datetime.fromtimestamp(start_wall + offset, tz=UTC)
        value = codec.encode(request.replace(created_at=created))
        records.append(TimedRecord(request.request_id.encode(), value, start_mono + offset))
    store = open_store(settings.store)
    store.ensure_ready()
    hooks = ProgressHooks(settings, worker_id="bench-latency")
    run = LocalFeed(settings, engine=engine, store=store, encode=encode_image, hooks=hooks).run(
        records
    )
    if run.failures():
        raise RuntimeError(f"latency run: a request failed: {run.failures()[0]}")
    return [s.e2e_s for _, s in run.summaries if s.e2e_s is not None]


# -- Kafka source ----------------------------------------------------------------------------
def _kafka_source(stack: ExitStack) -> Any:
    from benchmarks.stack import running_stack

    return stack.enter_context(running_stack())


def through_kafka(
    local_stack: Any,
    settings: Settings,
    engine: Engine,
    args: argparse.Namespace,
    hooks: WorkerHooks | None = None,
    marks: dict[str, tuple[float, float]] | None = None,
    encode: EncodeImage | None = None,
) -> list[float]:
    """Run the worker on ``engine`` against ``local_stack``'s broker (a LocalStack or a
    KafkaBroker) and send ``args.requests`` requests, one every ``args.interval`` seconds;
    return each one's seconds from ``created_at`` (set as it is produced) to its result read.
    ``marks``, if given, receives request id → (produced, read) in wall-clock seconds;
    ``encode``, if given, replaces the worker's image encoder (a before/after comparison)."""
    from benchmarks.stack import fresh_topics
    from streamgen.worker.run import run_worker

    topics = fresh_topics(local_stack, partitions=1)
    settings = replace(
        settings,
        kafka=replace(settings.kafka, bootstrap_servers=local_stack.bootstrap_servers),
        topics=topics,
    )
    received: dict[str, float] = {}
    stop = threading.Event()
    reader = threading.Thread(target=_read_results, args=(settings, received, stop), daemon=True)
    reader.start()
    worker = threading.Thread(
        target=run_worker,
        args=(settings,),
        kwargs={
            "engine": engine,
            "hooks": hooks,
            "install_signal_handlers": False,
            "stop": stop,
            "encode": encode,
        },
        daemon=True,
    )
    worker.start()
    producer = Producer({"bootstrap.servers": local_stack.bootstrap_servers, "acks": "all"})
    codec = request_codec(settings.kafka, topics.requests)
    try:
        # The first request waits for the group join; it is not counted.
        warm = next(requests(1, args, tag=f"-join{uuid.uuid4().hex[:6]}"))
        _send(producer, codec, topics.requests, warm)
        _wait_for(received, {warm.request_id}, timeout_s=120)
        created: dict[str, datetime] = {}
        for request in _paced(args):
            created[request.request_id] = request.created_at or datetime.now(UTC)
            _send(producer, codec, topics.requests, request)
        _wait_for(received, set(created), timeout_s=60 + 10 * args.requests)
    finally:
        stop.set()
        worker.join(60)
        reader.join(10)
    if marks is not None:
        marks.update({rid: (c.timestamp(), received[rid]) for rid, c in created.items()})
    return [received[rid] - c.timestamp() for rid, c in created.items()]


def _paced(args: argparse.Namespace) -> Iterator[GenerationRequest]:
    tag = f"-{uuid.uuid4().hex[:6]}"
    start = time.monotonic()
    for i, request in enumerate(requests(args.requests, args, tag=tag)):
        time.sleep(max(0.0, start + i * args.interval - time.monotonic()))
        yield request.replace(created_at=datetime.now(UTC))


def _send(producer: Producer, codec: Any, topic: str, request: GenerationRequest) -> None:
    producer.produce(topic, key=request.request_id.encode(), value=codec.encode(request))
    if producer.flush(10):
        raise RuntimeError(f"request {request.request_id} not acknowledged within 10s")


def _read_results(settings: Settings, received: dict[str, float], stop: threading.Event) -> None:
    codec = result_codec(settings.kafka, settings.topics.results)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"bench-latency-reader-{uuid.uuid4().hex[:8]}",
            "fetch.wait.max.ms": 10,  # this consumer is the stopwatch: do not batch fetches
        }
    )
    consumer.assign([TopicPartition(settings.topics.results, 0, 0)])
    try:
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            result = codec.decode(message.value())
            # A FAILED result is recorded under a marked key: the latency is then not counted
            # and the run reports the failure instead of timing out.
            failed = "" if result.status == "SUCCEEDED" else f"FAILED:{result.error}:"
            received[failed + result.request_id] = time.time()
    finally:
        consumer.close()


def _wait_for(received: dict[str, float], ids: set[str], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ids <= received.keys():
        failures = [key for key in received if key.startswith("FAILED:")]
        if failures:
            raise RuntimeError(f"a request failed: {failures[0]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids - received.keys())} results missing after {timeout_s}s")
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
