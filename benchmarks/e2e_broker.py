"""Benchmark 2b — end to end through a real Kafka broker: the whole worker versus the engine.

Unlike ``bench-e2e`` (records fed from memory), every request here travels through a real
Kafka broker (the version ``deploy/local/pom.xml`` pins), started by the local stack's own
:class:`KafkaBroker` in a temp dir on free ports. On the GPU machine, which has no Java, that
broker runs from the bundle that ``scripts/broker-bundle`` builds (``STREAMGEN_JAVA`` and
``STREAMGEN_CACHE_DIR`` point at it; ``scripts/bench-gpu-session e2e-broker`` unpacks it).
Images go to the file store. In one process, on one loaded engine:

1. warm up as a worker does (``engine.warm_up``: compile, cuDNN, a CUDA graph per bucket);
2. the engine alone at ``--batch-size`` and at 1 (median of ``--repeats`` calls);
3. sustained load: ``--requests`` pre-filled into a fresh requests topic, then the real worker
   (``run_worker``: the worker's own assembly, ``ConsumerLoop``, GPU thread, output pool,
   producer) until the commit covering the last one: images/s over the engine alone (target
   >= 0.95) and the GPU busy fraction (time inside ``engine.generate`` over that wall time);
4. light load: one request every ``--light-interval`` seconds for ``--light-seconds``, each
   timed from its ``created_at`` (set as it is produced) to the moment a consumer of the
   results topic reads its result; p50/p95 and what is beyond one generation alone (target
   <= 30 ms at p50).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks.e2e import engine_alone
from benchmarks.encode import WORKER_ENCODERS
from benchmarks.latency import percentile, through_kafka
from benchmarks.models import (
    MODEL,
    add_engine_arguments,
    engine_settings,
    model_dir,
    on_engine_thread,
    requests,
)
from benchmarks.report import environment, write_json
from benchmarks.span_split import median_parts, median_split, split_requests
from benchmarks.stack import fresh_topics, prefill
from benchmarks.worker_run import ProgressHooks, run_until_committed
from streamgen.local.java import java_executable
from streamgen.local.kafka import KafkaBroker, kafka_version, new_cluster_id, pom_path
from streamgen.local.process import free_ports
from streamgen.settings import (
    EngineSettings,
    KafkaSettings,
    Settings,
    StoreSettings,
    WorkerSettings,
)
from streamgen.telemetry.tracing import WorkerTracer

__all__ = ["main", "running_broker"]

KNOBS = ("channels_last", "fuse_qkv", "compile", "aot_compile", "cuda_graphs")


@contextmanager
def running_broker() -> Iterator[KafkaBroker]:
    """A broker of its own in a temp dir on free ports, as ``streamgen dev`` starts it."""
    with tempfile.TemporaryDirectory(prefix="streamgen-e2e-broker-") as state_dir:
        port, controller_port = free_ports(2)
        broker = KafkaBroker(
            home=Path(state_dir) / "kafka",
            port=port,
            controller_port=controller_port,
            cluster_id=new_cluster_id(),
        )
        try:
            broker.start()
            yield broker
        finally:
            broker.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from streamgen.engine.engine import DiffusionEngine

    report: dict[str, Any] = {"benchmark": "end to end (real Kafka broker)", "settings": vars(args)}
    report["environment"] = environment(with_torch=True) | {
        "kafka broker": kafka_version(pom_path()),
        "java": java_executable(),
    }
    engine = DiffusionEngine(_engine_settings(args))
    report["device"] = str(engine.device)
    start = time.perf_counter()
    on_engine_thread(lambda: _warm_up(engine, args))
    report["warm_up_s"] = round(time.perf_counter() - start, 1)
    print(f"warmed up in {report['warm_up_s']} s", flush=True)
    alone = on_engine_thread(
        lambda: engine_alone(engine, _with(args, batch_sizes=sorted({1, args.batch_size})))
    )
    report["engine_alone_images_per_s"] = alone
    images = tempfile.mkdtemp(prefix="streamgen-e2e-broker-images-")
    try:
        start = time.perf_counter()
        with running_broker() as broker:
            report["broker_ready_s"] = round(time.perf_counter() - start, 1)
            print(f"broker on {broker.bootstrap_servers} in {report['broker_ready_s']} s")
            report["sustained"] = _sustained(broker, engine, args, images, alone)
            _print_sustained(report["sustained"])
            report["light_load"] = _light_load(broker, engine, args, images, alone[1])
            _print_light(report["light_load"])
    finally:
        shutil.rmtree(images, ignore_errors=True)
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-e2e-broker", description=__doc__)
    add_engine_arguments(p, arch="sd15", size=512, steps=30)
    p.add_argument("--knob", action="append", default=[], choices=KNOBS, help="engine knob")
    p.add_argument("--compile-cache-dir", default="", help="engine.compile_cache_dir")
    p.add_argument("--batch-size", type=int, default=32, help="the worker's batch limit")
    p.add_argument("--repeats", type=int, default=3, help="engine-alone calls per batch size")
    p.add_argument("--requests", type=int, default=256, help="pre-filled for sustained load")
    p.add_argument("--partitions", type=int, default=4, help="of the requests topic")
    p.add_argument("--max-in-flight", type=int, default=0, help="0: 3x the batch size")
    p.add_argument(
        "--max-wait-ms",
        type=int,
        default=WorkerSettings.max_wait_ms,
        help="sustained load (the worker's default)",
    )
    p.add_argument("--light-seconds", type=float, default=30.0, help="0 skips light load")
    p.add_argument("--light-interval", type=float, default=1.0, help="seconds between requests")
    p.add_argument(
        "--light-max-wait-ms",
        type=int,
        default=0,
        help="light load: a lone request's batch closes at once",
    )
    p.add_argument(
        "--encoder",
        choices=sorted(WORKER_ENCODERS),
        default="streamgen",
        help="the worker's image encoder: pillow-png-6 is the one before issue 22 (item 7)",
    )
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    return p


def _with(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


def _engine_settings(args: argparse.Namespace) -> EngineSettings:
    return engine_settings(
        args,
        models={MODEL: str(model_dir(args))},
        device=args.device,
        max_batch_size=args.batch_size,
        compile_cache_dir=args.compile_cache_dir,
    )


def _warm_up(engine: Any, args: argparse.Namespace) -> None:
    engine.warm_up([engine.shape_of(next(requests(1, args, tag="-warm")))])


def _settings(
    args: argparse.Namespace, broker: KafkaBroker, store_url: str, **worker: Any
) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
        store=StoreSettings(url=store_url),
        engine=_engine_settings(args),
        worker=WorkerSettings(**worker),
    )


def _sustained(
    broker: KafkaBroker,
    engine: Any,
    args: argparse.Namespace,
    images: str,
    alone: dict[int, float],
) -> dict[str, Any]:
    settings = _settings(
        args,
        broker,
        f"file://{images}/sustained",
        group_id=f"bench-e2e-broker-{os.getpid()}",
        max_wait_ms=args.max_wait_ms,
        max_in_flight=args.max_in_flight or 3 * args.batch_size,
    )
    settings = replace(settings, topics=fresh_topics(broker, args.partitions))
    prefill(settings, requests(args.requests, args, tag=f"-{os.getpid()}"))
    print(f"{args.requests} requests in the topic; running the worker …", flush=True)
    run, hooks = run_until_committed(
        settings,
        label="sustained",
        expected=args.requests,
        engine=engine,
        timeout_s=max(600.0, 10.0 * args.requests / alone[args.batch_size]),
        encode=WORKER_ENCODERS[args.encoder],
    )
    images_per_s = args.requests / run.seconds
    return {
        "requests": args.requests,
        "seconds": round(run.seconds, 3),
        "images_per_s": round(images_per_s, 3),
        "engine_alone_images_per_s": alone[args.batch_size],
        "ratio_to_engine_alone": round(images_per_s / alone[args.batch_size], 3),
        "gpu_busy_fraction": round(hooks.generate_seconds / run.seconds, 3),
        "batch_sizes": dict(sorted(hooks.batch_sizes.items())),
        "mean_batch_size": round(hooks.mean_batch_size(), 2),
        "cpu_ms_per_request": round(run.cpu_ms_per_request, 3),
    }


def _light_load(
    broker: KafkaBroker, engine: Any, args: argparse.Namespace, images: str, alone_ips: float
) -> dict[str, Any] | None:
    count = int(args.light_seconds / args.light_interval)
    if count < 1:
        return None
    settings = _settings(
        args,
        broker,
        f"file://{images}/light",
        group_id=f"bench-e2e-broker-light-{os.getpid()}",
        max_wait_ms=args.light_max_wait_ms,
        commit_interval_ms=500,
    )
    print(f"light load: {count} requests, one every {args.light_interval} s …", flush=True)
    # The worker's own spans, kept in memory: they split each request's time (span_split).
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = WorkerTracer(provider, group_id=settings.worker.group_id)
    hooks = ProgressHooks(settings, worker_id="bench-e2e-broker-light", tracer=tracer)
    marks: dict[str, tuple[float, float]] = {}
    latencies = through_kafka(
        broker,
        settings,
        engine,
        _with(args, requests=count, interval=args.light_interval),
        hooks,
        marks=marks,
        encode=WORKER_ENCODERS[args.encoder],
    )
    splits = split_requests(spans.get_finished_spans(), marks)
    generation = 1.0 / alone_ips
    batches = sum(hooks.batch_sizes.values())  # the group-join request's too
    in_run = hooks.generate_seconds / batches
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "requests": len(latencies),
        "interval_s": args.light_interval,
        "max_wait_ms": args.light_max_wait_ms,
        "p50_s": round(p50, 4),
        "p95_s": round(p95, 4),
        "max_s": round(max(latencies), 4),
        "mean_s": round(statistics.fmean(latencies), 4),
        "generation_alone_s": round(generation, 4),
        # engine.generate inside the worker in this phase, per batch (all of one request here)
        "generate_s_per_batch_in_run": round(in_run, 4),
        "batch_sizes": dict(sorted(hooks.batch_sizes.items())),
        "p50_beyond_generation_ms": round(1000 * (p50 - generation), 1),
        "p95_beyond_generation_ms": round(1000 * (p95 - generation), 1),
        "p50_beyond_generate_in_run_ms": round(1000 * (p50 - in_run), 1),
        # Each segment's median (span_split says what they are), over the requests whose
        # spans were all found; their totals are the latencies above.
        "split_requests": len(splits),
        "split_median": median_split(splits),
        # The same, in the parts the light-load target is quoted in (generation, store and
        # encode, publish, total; span_split.PARTS), each summed per request then the median.
        "split_parts_median": median_parts(splits),
    }


def _print_sustained(s: dict[str, Any]) -> None:
    print(
        f"sustained: {s['requests']} requests in {s['seconds']:.2f} s = "
        f"{s['images_per_s']:.2f} img/s; engine alone {s['engine_alone_images_per_s']:.2f} "
        f"img/s; ratio {s['ratio_to_engine_alone']:.3f} (target >= 0.95); GPU busy "
        f"{100 * s['gpu_busy_fraction']:.1f}%; batches {s['batch_sizes']}",
        flush=True,
    )


def _print_light(row: dict[str, Any] | None) -> None:
    if row is None:
        return
    print(
        f"light load: p50 {1000 * row['p50_s']:.1f} ms, p95 {1000 * row['p95_s']:.1f} ms "
        f"({row['requests']} requests); one generation alone "
        f"{1000 * row['generation_alone_s']:.1f} ms (in the worker "
        f"{1000 * row['generate_s_per_batch_in_run']:.1f} ms); beyond it: p50 "
        f"{row['p50_beyond_generation_ms']:.1f} ms (target <= 30), p95 "
        f"{row['p95_beyond_generation_ms']:.1f} ms",
        flush=True,
    )
    for key, what in (("split_median", "segment"), ("split_parts_median", "part")):
        split = row.get(key) or {}
        if split:
            parts = ", ".join(f"{k[:-3]} {v:.1f}" for k, v in split.items() if k != "total_ms")
            print(f"light load, median ms per {what}: {parts}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
