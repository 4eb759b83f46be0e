"""Benchmark 1 — the worker's overhead on CPU, against the real broker and MinIO.

One run, one broker: a topic is pre-filled with N requests, then read three times, each by a
consumer group of its own:

  (a) raw confluent-kafka consume + produce + commit (the baseline: what Kafka alone costs);
  (b) streamgen's worker with the no-op engine and the file store;
  (c) the same with MinIO (s3://).

Reported: requests/s of each, (b)/(a) and (c)/(a), CPU time of this process per request, the
gaps in the worker's intake (``benchmarks.gaps``: after each resume, and between records), and
(with ``--profile``) a pyinstrument profile of a further file-store run over every thread.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import thread as pool_thread
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.noop_engine import NoopEngine
from benchmarks.raw_kafka import raw_consume_produce
from benchmarks.report import environment, write_json
from benchmarks.stack import bench_settings, fresh_topics, prefill, running_stack
from benchmarks.throughput import Throughput
from benchmarks.worker_run import run_until_committed
from streamgen.contracts.request import GenerationRequest
from streamgen.local.stack import LocalStack
from streamgen.ops.topics import create_topics, plan_topics
from streamgen.settings import Settings, TopicSettings, WorkerSettings

MODEL = "noop"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report: dict[str, Any] = {"benchmark": "pipeline overhead (CPU)", "settings": vars(args)}
    report["environment"] = environment(with_stack=True)
    stack_cleanup: list[str] = []
    with running_stack() as stack, tempfile.TemporaryDirectory() as images:
        topics = fresh_topics(stack, args.partitions)
        base = _worker_settings(bench_settings(stack, topics, f"file://{images}/a"), args)
        print(f"pre-filling {topics.requests} with {args.requests} requests …", flush=True)
        prefill(base, _requests(args.requests))
        runs: list[Throughput] = []
        intake: dict[str, dict[str, float | int]] = {}
        outputs = _outputs(stack, topics)
        raw_out = next(outputs)
        runs.append(
            raw_consume_produce(
                stack.bootstrap_servers,
                topics.requests,
                raw_out.results,
                args.requests,
                commit_interval_s=args.commit_interval_ms / 1000,
            )
        )
        _print(runs[-1])
        stores = [("streamgen, no-op engine, file store", f"file://{images}/b")]
        if args.tmpfs and Path(args.tmpfs).is_dir():
            # Same code, no disk flush: separates the disk's fsync cost from streamgen's.
            tmpfs = tempfile.mkdtemp(prefix="streamgen-bench-", dir=args.tmpfs)
            stack_cleanup.append(tmpfs)
            stores.append(("streamgen, no-op engine, file store on tmpfs", f"file://{tmpfs}"))
        if not args.skip_minio:
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            stores.append(("streamgen, no-op engine, MinIO", f"s3://{bucket}"))
        for label, url in stores:
            settings = _for_run(base, next(outputs), url)
            throughput, hooks = run_until_committed(
                settings, label=label, expected=args.requests, engine=_engine(args)
            )
            runs.append(throughput)
            intake[label] = hooks.gaps.as_dict()
            _print(throughput, hooks.batch_sizes)
            print(f"{'':42s} intake: {intake[label]}", flush=True)
        if args.profile:
            report["profile"] = _profile(base, next(outputs), f"file://{images}/p", args)
    for path in stack_cleanup:
        shutil.rmtree(path, ignore_errors=True)
    raw = runs[0]
    report["runs"] = [{**r.as_dict(), **_intake(intake, r.label)} for r in runs]
    report["ratios_to_raw"] = {
        r.label: round(r.requests_per_s / raw.requests_per_s, 3) for r in runs[1:]
    }
    report["streamgen_cpu_ms_per_request_over_raw"] = {
        r.label: round(r.cpu_ms_per_request - raw.cpu_ms_per_request, 3) for r in runs[1:]
    }
    _summary(report)
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-pipeline", description=__doc__)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--commit-interval-ms", type=int, default=1_000)
    p.add_argument("--max-batch-size", type=int, default=16, help="of the no-op engine")
    p.add_argument("--max-wait-ms", type=int, default=WorkerSettings.max_wait_ms)
    p.add_argument("--max-in-flight", type=int, default=WorkerSettings.max_in_flight)
    p.add_argument("--encode-threads", type=int, default=WorkerSettings.encode_threads)
    p.add_argument("--image-size", type=int, default=8, help="pixels per side of the image")
    p.add_argument("--skip-minio", action="store_true")
    p.add_argument(
        "--tmpfs", default="/dev/shm", help="also run with the file store here ('' to skip)"
    )
    p.add_argument("--profile", metavar="PATH", help="also profile a file-store run; write here")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    return p


def _requests(n: int) -> Iterator[GenerationRequest]:
    created = datetime.now(UTC)
    for i in range(n):
        yield GenerationRequest(
            request_id=f"bench-{i:06d}",
            prompt=f"Professional product photography, item {i}, white background",
            model=MODEL,
            width=64,
            height=64,
            steps=20,
            seed=i,
            metadata={"product_id": f"p{i}"},
            created_at=created,
        )


def _engine(args: argparse.Namespace) -> NoopEngine:
    return NoopEngine(max_batch_size=args.max_batch_size, image_size=args.image_size)


def _worker_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    return replace(
        settings,
        engine=replace(settings.engine, models={MODEL: "(no-op engine)"}),
        worker=replace(
            settings.worker,
            max_wait_ms=args.max_wait_ms,
            max_in_flight=args.max_in_flight,
            commit_interval_ms=args.commit_interval_ms,
            encode_threads=args.encode_threads,
        ),
    )


def _outputs(stack: LocalStack, topics: TopicSettings) -> Iterator[TopicSettings]:
    """Results and dead-letter topics of their own for each run (requests stay shared)."""
    n = 0
    while True:
        n += 1
        run = replace(
            topics, results=f"{topics.results}-{n}", dead_letter=f"{topics.dead_letter}-{n}"
        )
        create_topics(stack.bootstrap_servers, plan_topics(run)[1:])
        yield run


def _for_run(base: Settings, topics: TopicSettings, store_url: str) -> Settings:
    return replace(
        base,
        topics=topics,
        store=replace(base.store, url=store_url),
        worker=replace(base.worker, group_id=f"bench-{uuid.uuid4().hex[:8]}"),
    )


def _profile(
    base: Settings, topics: TopicSettings, store_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    from pyinstrument.renderers import ConsoleRenderer

    from benchmarks.profiling import profile_threads
    from streamgen.worker.generation import GenerationStage

    label = "streamgen, no-op engine, file store (profiled)"
    settings = _for_run(base, topics, store_url)
    # Worker threads of the pool and the run thread are plain Threads; the GPU thread is not.
    with profile_threads(threading.Thread, GenerationStage) as profiles:
        throughput, _ = run_until_committed(
            settings, label=label, expected=args.requests, engine=_engine(args)
        )
    _print(throughput)
    session = profiles.combined()
    flat = ConsoleRenderer(flat=True, short_mode=True).render(session)
    tree = ConsoleRenderer(show_all=False).render(session)
    Path(args.profile).write_text(f"{flat}\n\n{tree}")
    print(f"profile of {profiles.started} threads written to {args.profile}")
    assert pool_thread  # the pool's threads are threading.Thread: covered above
    return {"path": args.profile, "threads": profiles.started, "run": throughput.as_dict()}


def _intake(intake: dict[str, dict[str, float | int]], label: str) -> dict[str, Any]:
    return {"intake_gaps": intake[label]} if label in intake else {}


def _print(run: Throughput, batch_sizes: Any = None) -> None:
    line = (
        f"{run.label:42s} {run.requests:6d} requests in {run.seconds:6.2f}s: "
        f"{run.requests_per_s:8.1f} req/s, {run.cpu_ms_per_request:6.3f} ms CPU/request"
    )
    if batch_sizes:
        total = sum(size * n for size, n in batch_sizes.items())
        line += f", mean batch {total / sum(batch_sizes.values()):.1f}"
    print(line, flush=True)


def _summary(report: dict[str, Any]) -> None:
    print("\nratio to raw consume+produce (requests/s):")
    for label, ratio in report["ratios_to_raw"].items():
        print(f"  {label:42s} {ratio:.3f}")
    print("CPU ms per request beyond the raw baseline's:")
    for label, ms in report["streamgen_cpu_ms_per_request_over_raw"].items():
        print(f"  {label:42s} {ms:.3f}")


if __name__ == "__main__":
    sys.exit(main())
