"""Benchmark: fairness across partitions (issue 22, item 5; DESIGN invariant 11).

A backlog of ``--per-partition`` requests on each of ``--partitions`` partitions is in a fresh
topic of a real Kafka broker before one worker starts (the worker's own ``run_worker``, file
store). The engine does no diffusion and takes ``--batch-ms`` per batch, so the GPU is the
bottleneck, as in production, and the figures measure the order of service only.

A record's *wait* is from the moment the worker began serving (its first durable outcome,
which takes the broker's join and the first fetch out of the figure) to the moment the
record's own outcome became durable. Printed per partition: its first record's wait and its
p99 wait; then the worst partition's p99 over the mean of the partitions' p99 (issue 22's
target: at most 1.5).

    python -m benchmarks.fairness [--partitions 6] [--per-partition 60] [--batch-ms 40]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Producer

from benchmarks.e2e_broker import running_broker
from benchmarks.fixed_cost import FixedCostEngine
from benchmarks.latency import percentile
from benchmarks.stack import fresh_topics
from benchmarks.worker_run import ProgressHooks, run_until_committed
from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.settings import KafkaSettings, Settings, StoreSettings, WorkerSettings
from streamgen.telemetry.worker_hooks import OutcomeSummary

__all__ = ["main"]


class DurableTimes(ProgressHooks):
    """Notes when each request's outcome became durable."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.at: dict[str, float] = {}
        self._lock = threading.Lock()

    def durable(self, summary: OutcomeSummary) -> None:
        with self._lock:
            self.at.setdefault(summary.request_id, time.monotonic())
        super().durable(summary)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with running_broker() as broker, tempfile.TemporaryDirectory() as images:
        topics = fresh_topics(broker, args.partitions)
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
            topics=topics,
            store=StoreSettings(url=f"file://{images}"),
            worker=WorkerSettings(
                group_id=f"bench-fairness-{uuid.uuid4().hex[:6]}",
                max_in_flight=args.max_in_flight,
                max_wait_ms=20,
            ),
        )
        partition_of = _prefill(settings, args.partitions, args.per_partition)
        hooks = DurableTimes(settings, worker_id="bench-fairness", expected=len(partition_of))
        run_until_committed(
            settings,
            label="fairness",
            expected=len(partition_of),
            engine=FixedCostEngine(batch_s=args.batch_ms / 1000, max_batch_size=args.batch_size),
            hooks=hooks,
        )
    _report(hooks.at, partition_of, args)
    return 0


def _prefill(settings: Settings, partitions: int, per_partition: int) -> dict[str, int]:
    """The backlog, written one partition after another; returns each request's partition."""
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    partition_of = {}
    for p in range(partitions):
        for i in range(per_partition):
            request = GenerationRequest(
                request_id=f"fair-{p}-{i}-{uuid.uuid4().hex[:6]}", prompt=f"p{p} r{i}", seed=i
            )
            producer.produce(
                settings.topics.requests,
                key=request.request_id.encode(),
                value=codec.encode(request),
                partition=p,
            )
            producer.poll(0)
            partition_of[request.request_id] = p
    if producer.flush(60):
        raise RuntimeError("prefill: not every request was delivered within 60 s")
    return partition_of


def _report(at: dict[str, float], partition_of: dict[str, int], args: argparse.Namespace) -> None:
    start = min(at.values())
    waits: dict[int, list[float]] = {p: [] for p in range(args.partitions)}
    for request_id, done in at.items():
        waits[partition_of[request_id]].append(done - start)
    print(
        f"{args.partitions} partitions x {args.per_partition} requests, {args.batch_ms} ms a "
        f"batch of up to {args.batch_size}, max_in_flight {args.max_in_flight}"
    )
    print("| partition | first record wait (s) | p99 wait (s) |")
    print("|---:|---:|---:|")
    p99s = []
    for p, values in waits.items():
        values.sort()
        p99s.append(percentile(values, 99))
        print(f"| {p} | {values[0]:.2f} | {p99s[-1]:.2f} |")
    mean = statistics.fmean(p99s)
    print(f"worst p99 / mean p99: {max(p99s) / mean:.2f} (target <= 1.5)")
    print(f"worst first-record wait: {max(w[0] for w in waits.values()):.2f} s")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--per-partition", type=int, default=60)
    parser.add_argument("--batch-ms", type=float, default=40.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-in-flight", type=int, default=16)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
