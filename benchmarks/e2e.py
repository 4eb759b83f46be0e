"""Benchmark 2 — end to end on the GPU: the worker's path versus the engine alone.

The device machine has no Java, so no Kafka broker: requests are fed from memory through the
worker's own decode / batch / generate / encode+store / result path (see
:mod:`benchmarks.local_source`, which says exactly what stands in for Kafka); the Kafka
side's cost is benchmark 1's. In one run, on one loaded engine:

1. warm up every batch size (2 steps, untimed: cuDNN autotuning, torch.compile);
2. the engine alone: one ``generate`` per batch size; the best images/s and its batch size;
3. end to end: N requests through the worker's stages with that batch size as the limit.

Reported: images/s end to end over the engine alone (target >= 0.95), the GPU busy fraction
(time inside ``engine.generate`` over wall time), and the batch sizes the batcher formed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

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
from streamgen.contracts.codec import request_codec
from streamgen.settings import EngineSettings, Settings, StoreSettings, WorkerSettings

__all__ = ["engine_alone", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from streamgen.engine.engine import DiffusionEngine
    from streamgen.store import FileStore
    from streamgen.store.encode import encode_image

    report: dict[str, Any] = {"benchmark": "end to end (local source)", "settings": vars(args)}
    report["environment"] = environment(with_torch=True)
    report["source"] = (
        "in-process: no Kafka broker; records go through Intake, MicroBatcher, GenerationStage, "
        "ImageWriter (file store) and OutcomeSink, results kept in memory"
    )
    engine = DiffusionEngine(_engine_settings(args, max(args.batch_sizes)))
    report["device"] = str(engine.device)
    print(f"warming up batch sizes {args.batch_sizes} …", flush=True)
    on_engine_thread(lambda: _warm_up(engine, args))
    alone = on_engine_thread(lambda: engine_alone(engine, args))
    best_batch, best_ips = max(alone.items(), key=lambda kv: kv[1])
    report["engine_alone_images_per_s"] = alone
    report["best_batch_size"] = best_batch
    print(f"engine alone: best {best_ips:.2f} img/s at batch {best_batch}", flush=True)
    with tempfile.TemporaryDirectory(prefix="streamgen-e2e-") as images:
        settings = _settings(args, images, best_batch)
        hooks = ProgressHooks(settings, worker_id="bench-e2e")
        feed = LocalFeed(
            settings,
            engine=engine,
            store=FileStore(images),
            encode=encode_image,
            hooks=hooks,
            max_batch_size=lambda _shape: best_batch,
        )
        codec = request_codec(settings.kafka, "local.requests")
        records = [
            TimedRecord(r.request_id.encode(), codec.encode(r))
            for r in requests(args.requests, args, tag="-e2e")
        ]
        run = feed.run(records)
    if run.failures():
        raise RuntimeError(f"{len(run.failures())} requests failed: {run.failures()[0]}")
    e2e_ips = args.requests / run.seconds
    latencies = sorted(s.e2e_s for _, s in run.summaries if s.e2e_s is not None)
    report["end_to_end"] = {
        "requests": args.requests,
        "seconds": round(run.seconds, 3),
        "images_per_s": round(e2e_ips, 3),
        "ratio_to_engine_alone": round(e2e_ips / best_ips, 3),
        "gpu_busy_fraction": round(hooks.generate_seconds / run.seconds, 3),
        "batch_sizes": dict(sorted(hooks.batch_sizes.items())),
        "mean_batch_size": round(hooks.mean_batch_size(), 2),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
    }
    _print(report)
    write_json(args.json, report)
    return 0


def _warm_up(engine: Any, args: argparse.Namespace) -> None:
    for n in args.batch_sizes:
        engine.generate(list(requests(n, args, tag="-warm", steps=2)))


def engine_alone(engine: Any, args: argparse.Namespace) -> dict[int, float]:
    """Images/s of ``generate`` per batch size: the median of ``--repeats`` calls, the GPU
    synchronised around each."""
    import torch

    out: dict[int, float] = {}
    for n in args.batch_sizes:
        batch = list(requests(n, args, tag=f"-alone{n}"))
        times = []
        for _ in range(args.repeats):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            outcomes = engine.generate(batch)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            failed = [o.error for o in outcomes if not o.ok]
            if failed:
                raise RuntimeError(f"engine alone, batch {n}: {failed[0]}")
        seconds = statistics.median(times)
        out[n] = round(n / seconds, 3)
        print(f"engine alone batch {n:3d}: {seconds:7.2f}s  {n / seconds:7.2f} img/s", flush=True)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-e2e", description=__doc__)
    add_engine_arguments(p, arch="sd15", size=512, steps=30)
    p.add_argument("--requests", type=int, default=256, help="fed end to end")
    p.add_argument(
        "--batch-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 8, 16, 24, 32],
        help="tried by the engine alone; the best is the worker's limit",
    )
    p.add_argument("--repeats", type=int, default=3, help="engine-alone calls per batch size")
    p.add_argument("--max-wait-ms", type=int, default=WorkerSettings.max_wait_ms)
    p.add_argument("--max-in-flight", type=int, default=0, help="0: 3x the best batch size")
    p.add_argument("--encode-threads", type=int, default=WorkerSettings.encode_threads)
    for knob in ("channels_last", "fuse_qkv", "compile"):
        p.add_argument(f"--{knob.replace('_', '-')}", action="store_true", help="engine knob")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    return p


def _engine_settings(args: argparse.Namespace, max_batch: int) -> EngineSettings:
    return EngineSettings(
        models={MODEL: str(model_dir(args))},
        device=args.device,
        dtype=args.dtype,
        max_batch_size=max_batch,
        channels_last=args.channels_last,
        fuse_qkv=args.fuse_qkv,
        compile=args.compile,
    )


def _settings(args: argparse.Namespace, images: str, best_batch: int) -> Settings:
    in_flight = args.max_in_flight or 3 * best_batch
    return Settings(
        store=StoreSettings(url=f"file://{images}"),
        engine=_engine_settings(args, best_batch),
        worker=WorkerSettings(
            max_wait_ms=args.max_wait_ms,
            max_in_flight=in_flight,
            encode_threads=args.encode_threads,
        ),
    )


def _print(report: dict[str, Any]) -> None:
    e = report["end_to_end"]
    print(f"\nsource: {report['source']}")
    print(
        f"end to end: {e['requests']} requests in {e['seconds']:.2f}s = "
        f"{e['images_per_s']:.2f} img/s; engine alone at batch {report['best_batch_size']}: "
        f"{report['engine_alone_images_per_s'][report['best_batch_size']]:.2f} img/s"
    )
    print(
        f"ratio {e['ratio_to_engine_alone']:.3f} (target >= 0.95); GPU busy "
        f"{100 * e['gpu_busy_fraction']:.1f}%; batches formed {e['batch_sizes']}"
    )


if __name__ == "__main__":
    sys.exit(main())
