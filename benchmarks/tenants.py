"""Benchmark: fair share between tenants through a real Kafka broker (issue 25).

A broker of its own (``benchmarks.e2e_broker.running_broker``), the real worker
(``run_worker``: its assembly, ConsumerLoop, batcher with ``worker.tenants = large=1,small=1``,
GPU thread, file store, result events) and one loaded engine (the tiny random pipeline on the
CPU by default). Fresh topics for each run:

1. one batch alone: the engine at ``--batch-size`` (median of 3 calls); the worker's capacity
   is taken as ``batch-size / one batch``;
2. ``small alone``: tenant ``small`` sends ``--small`` requests at an even rate;
3. ``small + large`` (the figure): the same, while tenant ``large`` sends ``--ratio`` times as
   many at ``--ratio`` times the rate, the two together offering ``--load`` of the capacity;
4. ``no tenants`` (``--contrast``): run 3 again with ``worker.tenants`` empty (first come,
   first served), to show what the fair share changes;
5. ``large capped`` (``--cap N``): run 3 again with ``worker.tenant_max_in_flight = large=N``.

``--burst N`` makes the large tenant send its first N requests at once: a backlog larger than
the window (``max_in_flight``, 8 batches) in front of the small tenant's requests in the same
partitions, which is what a cap is for.

Each request is timed from its ``created_at`` (set as it is produced) to the moment a
consumer of the results topic reads its result; the figure is the small tenant's p95 with the
large one present over its p95 alone (the issue asks for at most 2).

    python -m benchmarks.tenants [--small 12] [--ratio 10] [--load 0.8] [--burst N] [--cap N]
                                 [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
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
from streamgen.settings import Settings, Tenant, TenantCap

__all__ = ["main"]

TENANTS = (Tenant("large", 1.0), Tenant("small", 1.0))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report = new_report("fair share between tenants (real Kafka broker)", args)
    engine_settings, engine, one_batch = loaded_engine(args)
    report["one_batch_s"] = one_batch
    capacity = args.batch_size / one_batch
    small_rate = args.load * capacity / (1 + args.ratio)
    report["capacity_requests_per_s"] = round(capacity, 3)
    report["small_requests_per_s"] = round(small_rate, 4)
    print(f"one batch of {args.batch_size}: {one_batch:.3f} s; small every {1 / small_rate:.1f} s")
    caps = (TenantCap("large", args.cap),)
    runs: list[tuple[str, int, tuple[Tenant, ...], tuple[TenantCap, ...]]] = [
        ("small alone", 0, TENANTS, ()),
        ("small + large", args.ratio, TENANTS, ()),
    ]
    if args.contrast:
        runs.append(("no tenants", args.ratio, (), ()))
    if args.cap:
        runs.append(("large capped", args.ratio, TENANTS, caps))
    with running_broker() as broker, tempfile.TemporaryDirectory() as images:
        for label, ratio, tenants, capped in runs:
            settings = fresh_settings(
                broker,
                engine_settings,
                images,
                partitions=args.partitions,
                max_in_flight=8 * args.batch_size,
            )
            worker = replace(settings.worker, tenants=tenants, tenant_max_in_flight=capped)
            settings = replace(settings, worker=worker)
            report[label] = run = _run(label, settings, engine, args, small_rate, ratio)
            print(f"{label:>14}: {run}", flush=True)
    alone = report["small alone"]["small_latency_s"]["p95"]
    report["small_p95_with_large_over_alone"] = round(
        report["small + large"]["small_latency_s"]["p95"] / alone, 2
    )
    print(f"small p95 with large / alone: {report['small_p95_with_large_over_alone']}")
    if args.cap:
        capped = report["large capped"]["small_latency_s"]["p95"] / alone
        report["small_p95_with_large_capped_over_alone"] = round(capped, 2)
        print(f"small p95 with large capped / alone: {capped:.2f}")
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-tenants", description=__doc__)
    add_engine_arguments(p, arch="tiny", size=64, steps=4)
    p.add_argument("--batch-size", type=int, default=8, help="the worker's batch limit")
    p.add_argument("--small", type=int, default=12, help="requests the small tenant sends")
    p.add_argument("--ratio", type=int, default=10, help="large tenant's rate / small's")
    p.add_argument("--load", type=float, default=0.8, help="offered load / capacity, both")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--contrast", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--burst", type=int, default=0, help="large tenant's requests sent at once")
    p.add_argument("--cap", type=int, default=0, help="also run with the large tenant capped")
    p.add_argument("--json", help="write the report here")
    return p


def _run(
    label: str,
    settings: Settings,
    engine: Engine,
    args: argparse.Namespace,
    small_rate: float,
    ratio: int,
) -> dict[str, Any]:
    sent: dict[str, tuple[str, datetime]] = {}  # request id -> (tenant, created_at)
    read: dict[str, float] = {}  # request id -> wall clock its result was read
    stop = threading.Event()
    reader = threading.Thread(target=read_results, args=(settings, read, stop), daemon=True)
    reader.start()
    # One request first, its result awaited before the timed ones: the group join and the
    # first batch's warm-up are no part of any tenant's latency.
    warm_up = next(requests(1, args, tag=f"-warm-up-{uuid.uuid4().hex[:6]}"))
    prefill(settings, [warm_up])
    senders = [
        threading.Thread(
            target=_send,
            args=(settings, tenant, n, rate, burst, args, sent, lambda: warm_up.request_id in read),
            daemon=True,
        )
        for tenant, n, rate, burst in (
            ("small", args.small, small_rate, 0),
            ("large", args.small * ratio, small_rate * ratio, args.burst),
        )
        if n
    ]
    for sender in senders:
        sender.start()
    expected = args.small * (1 + ratio)
    try:
        throughput, hooks = run_until_committed(
            settings, label=label, expected=expected + 1, engine=engine, timeout_s=3600
        )
        for sender in senders:
            sender.join(60)
        deadline = time.monotonic() + 30
        while not sent.keys() <= read.keys() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        reader.join(10)
    run: dict[str, Any] = {
        "requests_per_s": round(expected / throughput.seconds, 3),
        "mean_batch_size": round(hooks.mean_batch_size(), 2),
        "lost": len(sent.keys() - read.keys()),
    }
    for tenant in ("small", "large"):
        latencies = [
            read[i] - created.timestamp() for i, (t, created) in sent.items() if t == tenant
        ]
        if latencies:
            run[f"{tenant}_latency_s"] = {
                "n": len(latencies),
                "p50": round(percentile(latencies, 50), 3),
                "p95": round(percentile(latencies, 95), 3),
                "max": round(max(latencies), 3),
            }
    return run


def _send(
    settings: Settings,
    tenant: str,
    n: int,
    rate: float,
    burst: int,
    args: argparse.Namespace,
    sent: dict[str, tuple[str, datetime]],
    ready: Callable[[], bool],
) -> None:
    """Once ``ready``, ``n`` requests of ``tenant``: the first ``burst`` at once, the others
    one every ``1 / rate`` seconds."""
    while not ready():
        time.sleep(0.05)
    topic = settings.topics.requests
    codec = request_codec(settings.kafka, topic)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    start = time.monotonic()
    tag = f"-{tenant}-{uuid.uuid4().hex[:6]}"
    for i, template in enumerate(requests(n, args, tag=tag)):
        time.sleep(max(0.0, start + max(0, i - burst) / rate - time.monotonic()))
        created = datetime.now(UTC)
        request = template.replace(tenant=tenant, created_at=created)
        sent[request.request_id] = (tenant, created)
        producer.produce(topic, key=request.request_id.encode(), value=codec.encode(request))
        producer.poll(0)
    producer.flush(30)


if __name__ == "__main__":
    sys.exit(main())
