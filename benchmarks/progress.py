"""Benchmark: what progress events (worker.progress, issue 25) cost the worker's throughput.

``--requests`` queued requests served by the worker as assembled in production (``LocalFeed``:
the real ConsumerLoop, intake, MicroBatcher, GPU thread, file store, result events), fed from
the in-memory Kafka clients of the unit tests, not a broker (on the 2-core test machine a broker
would time itself more than the engine). Progress events go through the real reporter, queue,
publisher thread and Avro encoding into an in-memory producer (``MemoryProducer``):
librdkafka's own produce cost, in its C threads, is not in these figures. Three runs on one
loaded engine, side by side, ``--rounds`` times in turn:

- ``off``: worker.progress off (the default): nothing reported;
- ``on``: worker.progress on at the default cadence (worker.progress_interval_s = 1 s);
- ``every_step``: on, every denoising step reported (interval 0): the worst case.

Per run: wall seconds from the first admission to the last durable outcome, requests per
second, engine seconds, progress events published and dropped, and 0 lost / 0 answered twice.

On a loaded CPU the runs' own noise is far above 1 %, so (b) also times the pieces that
progress adds, each alone, ``--calls`` times: the GPU thread's step callback for a batch of
``--batch`` requests (most calls not due at the default cadence; every call a note at interval
0), a stage note (picked up, batch started, stored), and the publisher thread's work per event
(Avro encoding and the produce call), which takes the GIL from the worker's other threads.

    python -m benchmarks.progress [--requests 120] [--rounds 3] [--calls 20000] [--json PATH]
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from benchmarks.local_source import TimedRecord
from benchmarks.models import add_engine_arguments, on_engine_thread, requests
from benchmarks.queue_runs import cpu_engine, interleaved, queue_feed
from benchmarks.report import write_json
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.progress import progress_codec
from streamgen.engine.types import Engine, StepObserver
from streamgen.settings import (
    KafkaSettings,
)
from streamgen.telemetry.progress_metrics import REASONS, ProgressMetrics
from streamgen.worker.progress import ProgressNote, ProgressReporter
from streamgen.worker.progress_publisher import ProgressPublisher
from tests.support.memory_kafka import MemoryProducer

__all__ = ["main"]

# worker.progress_interval_s of each scenario; None: progress off.
SCENARIOS: dict[str, float | None] = {"off": None, "on": 1.0, "every_step": 0.0}


def queue_run(engine: Engine, args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """One run of ``args.requests`` queued requests under ``scenario``."""
    interval = SCENARIOS[scenario]
    queued = list(requests(args.requests, args, tag=f"-{scenario}"))
    registry = CollectorRegistry()  # the progress series of this run
    producer = MemoryProducer()
    publisher = None
    if interval is not None:
        publisher = ProgressPublisher(
            producer,
            topic="local.progress",
            worker_id="bench",
            encode=progress_codec(KafkaSettings(), "local.progress").encode,
            metrics=ProgressMetrics(registry),
        )
        publisher.start()
    worker = {"progress": interval is not None, "progress_interval_s": interval or 0.0}
    with tempfile.TemporaryDirectory(prefix="streamgen-progress-") as images:
        feed, hooks = queue_feed(
            args, engine, images, f"bench-progress-{scenario}", worker=worker, progress=publisher
        )
        settings = feed.settings
        codec = request_codec(settings.kafka, "local.requests")
        run = feed.run([TimedRecord(r.request_id.encode(), codec.encode(r)) for r in queued])
    decode = result_codec(settings.kafka, "local.results").decode
    results = [decode(v) for topic, _, v in run.results.records if topic == "local.results"]
    answered = Counter(r.request_id for r in results)
    sample = registry.get_sample_value
    return {
        "requests": len(queued),
        "wall_seconds": round(run.seconds, 3),
        "requests_per_second": round(len(queued) / run.seconds, 2),
        "engine_seconds": round(hooks.generate_seconds, 3),
        "batches": sum(hooks.batch_sizes.values()),
        "progress_events_published": int(sample("streamgen_progress_events_published_total") or 0),
        "progress_events_dropped": {
            reason: int(sample("streamgen_progress_events_dropped_total", {"reason": reason}) or 0)
            for reason in REASONS
        },
        "progress_events_kept": len(producer.records),
        "results_by_status": dict(Counter(r.status for r in results)),
        "lost": len({r.request_id for r in queued} - set(answered)),
        "answered_twice": sum(1 for n in answered.values() if n > 1),
    }


def piece_costs(args: argparse.Namespace) -> dict[str, float]:
    """(b): microseconds per call of each piece progress adds, alone."""
    ids = [f"bench-{i:06d}" for i in range(args.batch)]
    notes: queue.Queue[ProgressNote] = queue.Queue()  # unbounded: no call is a drop

    def per_call_us(fn: Callable[[], object], calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return round((time.perf_counter() - start) / calls * 1e6, 3)

    costs: dict[str, float] = {}
    for label, interval in (("step_callback_default_cadence", 1.0), ("step_callback_every", 0.0)):
        observe = ProgressReporter(notes, interval_s=interval).step_observer()
        assert observe is not None
        steps = iter(range(2, 10**9))  # never the first nor the last step of 10**9

        def step(observe: StepObserver = observe, steps: Iterator[int] = steps) -> None:
            # As the engine calls it: the batch's request ids, once each, then the callback.
            observe(list(dict.fromkeys(ids)), next(steps), 10**9)

        costs[f"{label}_us"] = per_call_us(step, args.calls)
    reporter = ProgressReporter(notes)
    costs["stage_note_us"] = per_call_us(lambda: reporter.stored(ids[0]), args.calls)
    publisher = ProgressPublisher(
        MemoryProducer(),
        topic="bench.progress",
        worker_id="bench",
        encode=progress_codec(KafkaSettings(), "bench.progress").encode,
        metrics=ProgressMetrics(CollectorRegistry()),
        notes=notes,
    )
    events = sum(len(n.request_ids) for n in list(notes.queue))
    start = time.perf_counter()
    publisher.start()
    publisher.close(timeout=60.0)
    costs["publisher_per_event_us"] = round((time.perf_counter() - start) / events * 1e6, 3)
    return costs


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report: dict[str, Any] = {"benchmark": "progress events (issue 25)", "settings": vars(args)}
    report["source"] = "in-memory Kafka clients and producer (tests/support/memory_kafka.py)"
    engine = cpu_engine(args, report)
    runs = interleaved(args.rounds, SCENARIOS, lambda scenario: queue_run(engine, args, scenario))
    medians = {
        scenario: statistics.median(r["requests_per_second"] for r in done)
        for scenario, done in runs.items()
    }
    report["runs"] = {
        scenario: {"median_requests_per_second": medians[scenario], "runs": done}
        for scenario, done in runs.items()
    }
    # Paired by round (the same machine load), then the median of the rounds' losses.
    report["throughput_loss_vs_off"] = {
        scenario: round(
            statistics.median(
                1 - on["requests_per_second"] / off["requests_per_second"]
                for on, off in zip(runs[scenario], runs["off"], strict=True)
            ),
            4,
        )
        for scenario in SCENARIOS
        if scenario != "off"
    }
    print(f"medians {medians}; loss vs off {report['throughput_loss_vs_off']}", flush=True)
    report["piece_costs"] = on_engine_thread(lambda: piece_costs(args))
    print(f"(b) {report['piece_costs']}", flush=True)
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-progress", description=__doc__)
    add_engine_arguments(p, arch="tiny", size=64, steps=8)  # the engine runs on the CPU
    p.add_argument("--requests", type=int, default=120, help="queued requests per run")
    p.add_argument("--batch", type=int, default=8, help="the worker's batch limit")
    p.add_argument("--rounds", type=int, default=3, help="runs of each scenario")
    p.add_argument("--calls", type=int, default=20_000, help="(b) calls of each piece")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    return p


if __name__ == "__main__":
    sys.exit(main())
