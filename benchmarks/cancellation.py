"""Benchmark: what cancellation saves and what dropping a row mid-batch costs (issue 25).

(a) Queued requests, half of them cancelled. ``--requests`` are queued at once and served by
the worker as assembled in production (``LocalFeed``: the real ConsumerLoop, intake,
MicroBatcher, GPU thread, file store, result events), fed from the in-memory Kafka clients of
the unit tests, not a broker: on the 2-core test machine a broker would time itself more than
the engine. The cancels are put in the worker's CancelSet directly (the cancels topic's
follower is not run; tests/integration/worker/test_cancellation.py covers that path on the real
broker). Three runs on one loaded engine, side by side, ``--rounds`` times in turn:

- ``none``: no cancel;
- ``before``: every other request cancelled before the worker starts (all found at intake);
- ``while_queued``: the same cancels arrive as the first batch starts (found mid-batch, in the
  queue, or at intake).

Per run: engine seconds (wall time inside ``engine.generate``), images generated, results by
status, and the checks that every request has exactly one result (0 lost, 0 answered twice),
no dead letter, and no image stored for a cancelled request.

(b) One row dropped mid-batch. The engine alone (``DiffusionEngine.generate``) on a batch of
``--drop-batch`` requests of ``--drop-steps`` steps: once uncancelled, once with one row
cancelled before step ``--drop-at``, once one row smaller. Step times come from the instants the
engine asks the cancel check about the batch's first row (once before each step); the last
step, which the decode follows, is not timed.

    python -m benchmarks.cancellation [--requests 500] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.local_source import TimedRecord
from benchmarks.models import MODEL, on_engine_thread, requests
from benchmarks.queue_runs import cpu_engine, interleaved, queue_feed
from benchmarks.report import write_json
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import CancelCheck, Engine, GenerationOutcome, Shape, StepObserver
from streamgen.worker.cancels import CancelSet

__all__ = ["main"]

SCENARIOS = ("none", "before", "while_queued")


def _requests(args: argparse.Namespace, n: int, tag: str, **shape: int) -> list[GenerationRequest]:
    """``n`` requests of ``args``' size and steps, or of those ``shape`` gives instead."""
    return list(requests(n, argparse.Namespace(**{**vars(args), **shape}), tag=f"-{tag}"))


class _OnFirstBatch:
    """The engine, calling ``first`` once, as its first batch starts."""

    def __init__(self, engine: Engine, first: Callable[[], None]) -> None:
        self._engine, self._first = engine, first

    def shape_of(self, request: GenerationRequest) -> Shape:
        return self._engine.shape_of(request)

    def max_batch_size(self, shape: Shape) -> int:
        return self._engine.max_batch_size(shape)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        first, self._first = self._first, lambda: None
        first()
        return self._engine.generate(requests, cancelled=cancelled, on_step=on_step)


def queue_run(engine: Engine, args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """(a): one run of ``args.requests`` queued requests under ``scenario``."""
    queued = _requests(args, args.requests, scenario)
    cancelled = {r.request_id for r in queued[1::2]} if scenario != "none" else set()
    cancels = CancelSet(max_ids=max(1, len(cancelled)), max_age_s=3600)

    def cancel_all() -> None:
        for request_id in sorted(cancelled):
            cancels.add(request_id, datetime.now(UTC))

    if scenario == "before":
        cancel_all()
    served = _OnFirstBatch(engine, cancel_all) if scenario == "while_queued" else engine
    with tempfile.TemporaryDirectory(prefix="streamgen-cancel-") as images:
        feed, hooks = queue_feed(args, served, images, f"bench-cancel-{scenario}", cancels=cancels)
        settings = feed.settings
        codec = request_codec(settings.kafka, "local.requests")
        run = feed.run([TimedRecord(r.request_id.encode(), codec.encode(r)) for r in queued])
        stored = {p.parent.name for p in Path(images).rglob("*.*") if p.is_file()}
    decode = result_codec(settings.kafka, "local.results").decode
    results = [decode(v) for topic, _, v in run.results.records if topic == "local.results"]
    answered = Counter(r.request_id for r in results)
    ids = {r.request_id for r in queued}
    metrics = hooks.metrics.registry
    by_stage = {
        stage: int(
            metrics.get_sample_value("streamgen_requests_cancelled_total", {"stage": stage}) or 0
        )
        for stage in ("intake", "queue", "generate")
    }
    cancelled_ok = all(
        r.status == "FAILED" and r.error is not None and r.error.code == "CANCELLED"
        for r in results
        if r.request_id in cancelled
    )
    return {
        "requests": len(queued),
        "cancels": len(cancelled),
        "engine_seconds": round(hooks.generate_seconds, 3),
        "wall_seconds": round(run.seconds, 3),
        "images_generated": int(
            metrics.get_sample_value("streamgen_images_generated_total", {"model": MODEL}) or 0
        ),
        "batches": sum(hooks.batch_sizes.values()),
        "results_by_status": dict(Counter(r.status for r in results)),
        "cancelled_by_stage": by_stage,
        "lost": len(ids - set(answered)),
        "answered_twice": sum(1 for n in answered.values() if n > 1),
        "dead_letters": sum(1 for t, _, _ in run.results.records if t != "local.results"),
        "cancelled_results_all_failed_cancelled": cancelled_ok,
        "cancelled_with_stored_image": len(cancelled & stored),
    }


def step_times(engine: Any, args: argparse.Namespace, batch: int, drop: bool) -> dict[str, Any]:
    """(b): one engine call; the seconds of each timed step and the rows each ran with."""
    rows = _requests(args, batch, f"step{batch}", size=args.drop_size, steps=args.drop_steps)
    first, victim = rows[0].request_id, rows[-1].request_id
    asks: list[float] = []
    victim_asks = [0]

    def cancelled(request: GenerationRequest) -> bool:
        if request.request_id == first:
            asks.append(time.perf_counter())
        if request.request_id != victim or not drop:
            return False
        victim_asks[0] += 1  # once before the batch, then before each step
        return bool(victim_asks[0] >= args.drop_at + 2)

    outcomes = engine.generate(rows, cancelled=cancelled)
    steps = [b - a for a, b in itertools.pairwise(asks[1:])]  # asks[0]: before the batch
    return {"steps_s": steps, "outcomes": outcomes}


def drop_cost(engine: Any, args: argparse.Namespace) -> dict[str, Any]:
    """(b): median step times of the three calls over ``--repeats`` repetitions."""
    k, b = args.drop_at, args.drop_batch
    runs: dict[str, list[list[float]]] = {"full": [], "dropped": [], "one_row_fewer": []}
    same = True
    for _ in range(args.repeats):
        full = step_times(engine, args, b, drop=False)
        dropped = step_times(engine, args, b, drop=True)
        runs["full"].append(full["steps_s"])
        runs["dropped"].append(dropped["steps_s"])
        runs["one_row_fewer"].append(step_times(engine, args, b - 1, drop=False)["steps_s"])
        for x, y in zip(full["outcomes"][:-1], dropped["outcomes"][:-1], strict=True):
            same &= all(_max_level_diff(i, j) <= 1 for i, j in zip(x.images, y.images, strict=True))

    def median_of(name: str, steps: slice) -> float:
        return round(statistics.median(t for run in runs[name] for t in run[steps]), 4)

    before, at, after = slice(1, k), slice(k, k + 1), slice(k + 1, None)  # step 0 warms caches
    return {
        "batch": b,
        "steps": args.drop_steps,
        "size": args.drop_size,
        "dropped_before_step": k,
        "repeats": args.repeats,
        "full_step_s": {"before": median_of("full", before), "after": median_of("full", after)},
        "dropped_step_s": {
            "before": median_of("dropped", before),
            "drop_step": median_of("dropped", at),
            "after": median_of("dropped", after),
        },
        "one_row_fewer_step_s": median_of("one_row_fewer", slice(1, None)),
        "others_images_equal_uncancelled_within_1_level": same,
    }


def _max_level_diff(a: Any, b: Any) -> int:
    import numpy as np

    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report: dict[str, Any] = {"benchmark": "cancellation (issue 25)", "settings": vars(args)}
    report["source"] = "in-memory Kafka clients (tests/support/memory_kafka.py), file store"
    engine = cpu_engine(args, report)
    run = lambda scenario: queue_run(engine, args, scenario)  # noqa: E731
    runs = interleaved(args.rounds, SCENARIOS, run, label="(a) ")
    report["queue"] = {
        scenario: {
            "median_engine_seconds": statistics.median(r["engine_seconds"] for r in done),
            "runs": done,
        }
        for scenario, done in runs.items()
    }
    report["drop_mid_batch"] = on_engine_thread(lambda: drop_cost(engine, args))
    print(f"(b) {report['drop_mid_batch']}", flush=True)
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-cancellation", description=__doc__)
    p.add_argument("--arch", default="tiny", help="random weights, written once")
    p.add_argument("--model", help="a pipeline directory instead of --arch")
    p.add_argument("--device", default="cpu", help="cpu only: the queue runs are CPU figures")
    p.add_argument("--requests", type=int, default=500, help="(a) queued requests")
    p.add_argument("--size", type=int, default=64, help="(a) width and height")
    p.add_argument("--steps", type=int, default=4, help="(a) denoising steps")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--batch", type=int, default=8, help="(a) the worker's batch limit")
    p.add_argument("--rounds", type=int, default=3, help="(a) runs of each scenario")
    p.add_argument("--drop-batch", type=int, default=8, help="(b) batch size")
    p.add_argument("--drop-steps", type=int, default=12, help="(b) denoising steps")
    p.add_argument("--drop-at", type=int, default=6, help="(b) the row leaves before this step")
    p.add_argument("--drop-size", type=int, default=128, help="(b) width and height")
    p.add_argument("--repeats", type=int, default=3, help="(b) repetitions of the three calls")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    return p


if __name__ == "__main__":
    sys.exit(main())
