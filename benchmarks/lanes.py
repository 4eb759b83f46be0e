"""Benchmark: priority lanes through a real Kafka broker (issue 25).

A broker of its own (``benchmarks.e2e_broker.running_broker``), the real worker
(``run_worker``: its assembly, ConsumerLoop, lane-aware admission and batcher, GPU thread,
file store, result events) and one loaded engine (the tiny random pipeline on the CPU by
default). Topics with three lanes, ``interactive=0.1,default=0.3,bulk=0.1``, fresh for each run:

1. one batch alone: the engine at ``--batch-size`` (median of 3 calls), the unit the
   interactive latency is read against;
2. ``bulk alone``: ``--bulk`` requests in the bulk lane, served to the last commit: the bulk
   lane's throughput without interactive traffic;
3. ``bulk + interactive``: the same backlog, and once its first result is out,
   ``--interactive`` requests in the interactive lane, one every ``--interval`` seconds, each
   timed from its ``created_at`` (set as it is produced) to the moment a consumer of the
   results topic reads its result; the bulk lane's throughput with that traffic;
4. ``one lane`` (``--contrast``): the same interactive requests sent into the bulk lane
   itself: what an urgent request waits behind a backlog without lanes.

    python -m benchmarks.lanes [--bulk 2000] [--interactive 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from benchmarks.broker_bench import fresh_settings, loaded_engine, new_report, read_results
from benchmarks.e2e_broker import running_broker
from benchmarks.latency import percentile
from benchmarks.models import add_engine_arguments, requests
from benchmarks.report import write_json
from benchmarks.stack import prefill
from benchmarks.worker_run import run_until_committed
from streamgen.contracts.codec import request_codec
from streamgen.engine.types import Engine
from streamgen.lanes import lane_topic
from streamgen.settings import Lane, Settings

__all__ = ["main"]

LANES = (Lane("interactive", 0.1), Lane("default", 0.3), Lane("bulk", 0.1))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report = new_report("priority lanes (real Kafka broker)", args)
    engine_settings, engine, report["one_batch_s"] = loaded_engine(args)
    print(f"one batch of {args.batch_size}: {report['one_batch_s']:.3f} s", flush=True)
    runs = ["bulk alone", "bulk + interactive"] + (["one lane"] if args.contrast else [])
    with running_broker() as broker, tempfile.TemporaryDirectory() as images:
        for label in runs:
            settings = fresh_settings(
                broker,
                engine_settings,
                images,
                partitions=args.partitions,
                max_in_flight=3 * args.batch_size,
                lanes=LANES,
            )
            report[label] = run = _run(label, settings, engine, args)
            _print(label, run, report["one_batch_s"])
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-lanes", description=__doc__)
    add_engine_arguments(p, arch="tiny", size=64, steps=4)
    p.add_argument("--batch-size", type=int, default=8, help="the worker's batch limit")
    p.add_argument("--bulk", type=int, default=2000, help="bulk-lane backlog")
    p.add_argument("--interactive", type=int, default=20, help="interactive requests sent")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between them")
    p.add_argument("--partitions", type=int, default=3, help="of each lane's topic")
    p.add_argument("--contrast", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--json", help="write the report here")
    return p


def _run(
    label: str, settings: Settings, engine: Engine, args: argparse.Namespace
) -> dict[str, Any]:
    bulk = list(requests(args.bulk, args, tag=f"-bulk-{uuid.uuid4().hex[:6]}"))
    bulk_ids = {r.request_id for r in bulk}
    # prefill publishes to topics.requests: point it at the bulk lane's topic.
    bulk_topic = lane_topic(settings.topics, "bulk")
    prefill(replace(settings, topics=replace(settings.topics, requests=bulk_topic)), bulk)
    sent: dict[str, datetime] = {}
    read: dict[str, float] = {}  # request id -> wall clock its result was read
    stop = threading.Event()
    reader = threading.Thread(target=read_results, args=(settings, read, stop), daemon=True)
    reader.start()
    lane = "bulk" if label == "one lane" else "interactive"
    sender = threading.Thread(
        target=_send, args=(settings, lane, args, bulk_ids, read, sent), daemon=True
    )
    if label != "bulk alone":
        sender.start()
    expected = args.bulk + (0 if label == "bulk alone" else args.interactive)
    try:
        throughput, hooks = run_until_committed(
            settings, label=label, expected=expected, engine=engine, timeout_s=3600
        )
        if sender.is_alive():
            sender.join(60)
        deadline = time.monotonic() + 30
        while not (bulk_ids | sent.keys()) <= read.keys() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        reader.join(10)
    last_bulk = max(read[i] for i in bulk_ids)
    latencies = [read[i] - created.timestamp() for i, created in sent.items()]
    run: dict[str, Any] = {
        "throughput": throughput.as_dict(),
        "bulk_requests_per_s": round(args.bulk / throughput.seconds, 2),
        "mean_batch_size": round(hooks.mean_batch_size(), 2),
        "results_read": len(read),
        "lost": len((bulk_ids | sent.keys()) - read.keys()),
    }
    if latencies:
        run["interactive_latency_s"] = {
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
            "max": round(max(latencies), 3),
            "each": sorted(round(x, 3) for x in latencies),
        }
        run["interactive_before_bulk_drained"] = sum(read[i] < last_bulk for i in sent)
    return run


def _send(
    settings: Settings,
    lane: str,
    args: argparse.Namespace,
    bulk_ids: set[str],
    read: dict[str, float],
    sent: dict[str, datetime],
) -> None:
    """Once the backlog's first result is out, one request every ``--interval`` seconds."""
    while not read.keys() & bulk_ids:
        time.sleep(0.05)
    topic = lane_topic(settings.topics, lane)
    codec = request_codec(settings.kafka, topic)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    tag = f"-{lane}-{uuid.uuid4().hex[:6]}"
    for request in requests(args.interactive, args, tag=tag):  # created_at: now, lazily
        sent[request.request_id] = request.created_at or datetime.now(UTC)
        producer.produce(topic, key=request.request_id.encode(), value=codec.encode(request))
        producer.flush(10)
        time.sleep(args.interval)


def _print(label: str, run: dict[str, Any], one_batch_s: float) -> None:
    line = f"{label:>20}: bulk {run['bulk_requests_per_s']:.1f} req/s"
    line += f", mean batch {run['mean_batch_size']}, lost {run['lost']}"
    latency = run.get("interactive_latency_s")
    if latency:
        line += (
            f"; interactive p50 {latency['p50']:.3f} s ({latency['p50'] / one_batch_s:.1f}"
            f" batches), p95 {latency['p95']:.3f} s, max {latency['max']:.3f} s,"
            f" {run['interactive_before_bulk_drained']} served before the backlog drained"
        )
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
