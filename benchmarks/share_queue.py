"""Benchmark: share groups against consumer groups through a real Kafka broker (issue 27).

A broker of its own (``benchmarks.e2e_broker.running_broker``, Kafka 4.2.2), a fresh 2-partition
requests topic and group for every run, and N real workers (``benchmarks.share_fleet``: each
``run_worker``, its own member, file store) whose engine sleeps a FIXED time per batch
(``benchmarks.fixed_cost``: the GPU's place, without using this machine's two cores). Each
scenario runs in ``worker.mode=group`` and ``worker.mode=share`` side by side:

1. *scaling*: ``--per-worker`` x N requests published at once (or, ``--paced-per-worker R``,
   at R x N per second in turn to the partitions), once the N workers are in the group;
   throughput of the requests generated (SUCCEEDED), from the moment publishing began to the
   last result read, for each N of ``--workers``, and each mode's speed-up over its smallest
   N. A consumer group cannot use more workers than partitions; a share group lends one
   partition's records to several members.
2. *head of line*: ``--hol-workers`` workers, ``--hol-requests`` requests sent at ``--rate``
   per second in turn to the two partitions, one of them (the ``--slow-at``-th, partition 0)
   ``--slow-factor`` times slower; each request timed from its send to the moment its result
   is read; p50/p95 of the others in each mode.

Every run checks that every request sent has its result read back (``lost``), and counts
results that are not SUCCEEDED (``failed``: dead-lettered), results read twice
(``duplicated``: a redo) and the share loop's counters.

    python -m benchmarks.share_queue [--workers 1 2 4 6] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from confluent_kafka import Producer

from benchmarks.broker_bench import fresh_settings
from benchmarks.e2e_broker import running_broker
from benchmarks.fixed_cost import SLOW_SUFFIX, FixedCostEngine
from benchmarks.models import MODEL
from benchmarks.report import environment, write_json
from benchmarks.share_fleet import ResultReader, running_fleet
from benchmarks.share_report import delivery_check, latency_summary, speedups, throughput
from benchmarks.stack import prefill
from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.local.kafka import KafkaBroker
from streamgen.ops.share_group import configure_share_group
from streamgen.settings import EngineSettings, Settings, WorkerMode

__all__ = ["main"]

MODES: tuple[WorkerMode, ...] = ("group", "share")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report: dict[str, Any] = {
        "benchmark": "share groups vs consumer groups (real Kafka broker, issue 27)",
        "settings": vars(args),
        "environment": environment(with_stack=True) | {"commit": _commit()},
        "load_average": {"start": os.getloadavg()},
    }
    scaling: dict[WorkerMode, dict[int, Any]] = {mode: {} for mode in MODES}
    hol: dict[str, Any] = {}
    with running_broker() as broker, tempfile.TemporaryDirectory() as images:
        for workers in args.workers:
            for mode in MODES:  # side by side: the machine's drift hits both alike
                scaling[mode][workers] = run = _scaling_run(broker, images, mode, workers, args)
                print(f"scaling {mode:>5} x{workers}: {_brief(run)}", flush=True)
        for mode in MODES:
            hol[mode] = run = _hol_run(broker, images, mode, args)
            print(f"head-of-line {mode:>5}: {_brief(run)}", flush=True)
    report["load_average"]["end"] = os.getloadavg()
    report["scaling"] = {
        mode: {
            "runs": runs,
            "speedup": speedups(
                {n: r["throughput"]["requests_per_s"] for n, r in runs.items() if "throughput" in r}
            ),
        }
        for mode, runs in scaling.items()
    }
    report["head_of_line"] = hol
    _print_tables(report, args)
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-share", description=__doc__)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 6])
    p.add_argument("--partitions", type=int, default=2, help="of each run's requests topic")
    p.add_argument("--per-worker", type=int, default=80, help="requests per worker (scaling)")
    p.add_argument(
        "--paced-per-worker",
        type=float,
        default=0.0,
        help="scaling: publish at this many requests/s per worker instead of all at once",
    )
    p.add_argument("--batch-size", type=int, default=4, help="engine.max_batch_size")
    p.add_argument("--batch-s", type=float, default=0.5, help="the engine's time per batch")
    p.add_argument("--max-in-flight", type=int, default=12, help="worker.max_in_flight")
    p.add_argument("--lock-ms", type=int, default=30_000, help="the share group's record lock")
    p.add_argument("--hol-workers", type=int, default=4)
    p.add_argument("--hol-requests", type=int, default=120)
    p.add_argument("--rate", type=float, default=6.0, help="head of line: requests per second")
    p.add_argument("--slow-at", type=int, default=30, help="the slow request's index (even)")
    p.add_argument("--slow-factor", type=float, default=10.0)
    p.add_argument("--timeout-s", type=float, default=180.0, help="a run's wait for results")
    p.add_argument("--json", help="write the report here")
    return p


def _settings(
    broker: KafkaBroker, images: str, mode: WorkerMode, args: argparse.Namespace
) -> Settings:
    """Fresh topics and group; share mode: the group reads from the start, with our lock."""
    engine = EngineSettings(
        models={MODEL: "(fixed-cost engine)"}, device="cpu", max_batch_size=args.batch_size
    )
    settings = fresh_settings(
        broker, engine, images, partitions=args.partitions, max_in_flight=args.max_in_flight
    )
    settings = replace(settings, worker=replace(settings.worker, mode=mode))
    if mode == "share":
        configure_share_group(
            {"bootstrap.servers": broker.bootstrap_servers},
            settings.worker.group_id,
            lock_ms=args.lock_ms,
        )
    return settings


def _engine(args: argparse.Namespace) -> FixedCostEngine:
    return FixedCostEngine(
        batch_s=args.batch_s, max_batch_size=args.batch_size, slow_factor=args.slow_factor
    )


def _requests(n: int, slow_at: int | None = None) -> list[GenerationRequest]:
    tag = uuid.uuid4().hex[:6]
    return [
        GenerationRequest(
            request_id=f"share-{tag}-{i:05d}" + (SLOW_SUFFIX if i == slow_at else ""),
            prompt=f"Professional product photography, item {i}, white background",
            model=MODEL,
            width=64,
            height=64,
            steps=4,
            seed=1000 + i,
            created_at=datetime.now(UTC),
        )
        for i in range(n)
    ]


def _scaling_run(
    broker: KafkaBroker, images: str, mode: WorkerMode, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    settings = _settings(broker, images, mode, args)
    requests = _requests(args.per_worker * workers)
    ids = {r.request_id for r in requests}
    load = os.getloadavg()[0]
    with (
        ResultReader(settings) as reader,
        running_fleet(settings, workers, partial(_engine, args)) as fleet,
    ):
        published_at = time.time()
        if args.paced_per_worker:  # offered load in proportion to the fleet, not a backlog
            _send_paced(settings, requests, args, rate=args.paced_per_worker * workers)
        else:
            prefill(settings, requests)
        complete = reader.wait_for(ids, args.timeout_s)
    read = reader.snapshot()
    run: dict[str, Any] = {
        "workers": workers,
        "complete": complete,
        "delivery": delivery_check(ids, read, reader.status),
        "errors": dict(reader.errors),
        "served_by": dict(sorted(reader.served_by.items())),
        "statuses": dict(reader.statuses),
        "share_counters": fleet.counters(),
        "joined_s": fleet.joined_s,
        "exit_codes": fleet.exit_codes,
        "load_average_1m": round(load, 2),
    }
    # Only what was generated: a dead-lettered request's result costs no engine time.
    firsts = [t[0] for i, t in read.items() if i in ids and reader.status[i] == "SUCCEEDED"]
    if firsts:
        run["throughput"] = throughput(firsts, published_at)
        run["per_worker_per_s"] = round(run["throughput"]["requests_per_s"] / workers, 3)
    return run


def _hol_run(
    broker: KafkaBroker, images: str, mode: WorkerMode, args: argparse.Namespace
) -> dict[str, Any]:
    settings = _settings(broker, images, mode, args)
    requests = _requests(args.hol_requests, slow_at=args.slow_at)
    ids = {r.request_id for r in requests}
    load = os.getloadavg()[0]
    with (
        ResultReader(settings) as reader,
        running_fleet(settings, args.hol_workers, partial(_engine, args)) as fleet,
    ):
        sent = _send_paced(settings, requests, args, rate=args.rate)
        complete = reader.wait_for(ids, args.timeout_s)
    read = reader.snapshot()
    latency = {i: read[i][0] - at for i, at in sent.items() if i in read}
    succeeded = {i for i in latency if reader.status[i] == "SUCCEEDED"}
    slow = [i for i in succeeded if i.endswith(SLOW_SUFFIX)]
    others = [latency[i] for i in succeeded if not i.endswith(SLOW_SUFFIX)]
    return {
        "workers": args.hol_workers,
        "complete": complete,
        "delivery": delivery_check(ids, read, reader.status),
        "errors": dict(reader.errors),
        "others_latency_s": latency_summary(others) if others else None,
        "slow_latency_s": round(latency[slow[0]], 3) if slow else None,
        "others_over_2_batches": sum(s > 2 * args.batch_s for s in others),
        "served_by": dict(sorted(reader.served_by.items())),
        "share_counters": fleet.counters(),
        "exit_codes": fleet.exit_codes,
        "load_average_1m": round(load, 2),
    }


def _send_paced(
    settings: Settings, requests: list[GenerationRequest], args: argparse.Namespace, rate: float
) -> dict[str, float]:
    """Request i to partition i mod the partitions, ``rate`` per second; the send times."""
    topic = settings.topics.requests
    codec = request_codec(settings.kafka, topic)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    sent: dict[str, float] = {}
    start = time.monotonic()
    for i, request in enumerate(requests):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        sent[request.request_id] = time.time()
        producer.produce(
            topic,
            key=request.request_id.encode(),
            value=codec.encode(request),
            partition=i % args.partitions,
        )
        producer.poll(0)
    producer.flush(30)
    return sent


def _brief(run: dict[str, Any]) -> str:
    d = run["delivery"]
    line = f"lost {d['lost']} of {d['sent']}, failed {d['failed']}, duplicated {d['duplicated']}"
    if "throughput" in run:
        t = run["throughput"]
        line = f"{t['requests_per_s']:.2f} req/s ({t['results']} in {t['seconds']:.1f} s), {line}"
    if run.get("others_latency_s"):
        o = run["others_latency_s"]
        line = f"others p50 {o['p50']:.2f} s p95 {o['p95']:.2f} s, {line}"
        line = f"slow one {run['slow_latency_s']} s, {line}"
    counters = {k: int(v) for k, v in run["share_counters"].items() if v}
    return f"{line}; share counters {counters}; exits {run['exit_codes']}"


def _print_tables(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n{args.partitions} partitions; batch {args.batch_size} in {args.batch_s} s")
    print("workers |  group req/s (x) |  share req/s (x) | share/group")
    scaling = report["scaling"]
    for n in args.workers:
        cells, rates = [], []
        for mode in MODES:
            rate = scaling[mode]["runs"][n].get("throughput", {}).get("requests_per_s", 0.0)
            cells.append(f"{rate:8.2f} ({scaling[mode]['speedup'].get(n, 0):.2f}x)")
            rates.append(rate)
        ratio = rates[1] / rates[0] if rates[0] else float("nan")
        print(f"{n:7d} | {cells[0]:>16} | {cells[1]:>16} | {ratio:.2f}")
    print("\nhead of line: the others' latency, s (p50 / p95 / max), the slow one's")
    for mode, run in report["head_of_line"].items():
        o = run["others_latency_s"] or {}
        print(
            f"{mode:>5}: {o.get('p50')} / {o.get('p95')} / {o.get('max')}; slow "
            f"{run['slow_latency_s']}; lost {run['delivery']['lost']}, failed "
            f"{run['delivery']['failed']}"
        )


def _commit() -> str:
    try:
        git = ["git", "rev-parse", "--short", "HEAD"]
        out = subprocess.run(git, check=False, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
