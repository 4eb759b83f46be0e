"""Benchmark 3 — scaling: one worker per GPU (``streamgen fleet --gpus all``) versus one GPU.

The fleet is the real one: :func:`~streamgen.fleet.supervisor.plan_slots` pins each worker to
its GPU (``CUDA_VISIBLE_DEVICES``) and :class:`~streamgen.fleet.processes.Fleet` spawns and
supervises the processes. What each process runs differs from ``streamgen worker`` in one way
only: with no Kafka broker on the GPU machine, its share of the requests is fed from memory
through the worker's own stages (:mod:`benchmarks.local_source`), as in ``bench-e2e``.

Every process loads its engine and warms up, then waits for the others, so the timed window
(first start to last finish, over all processes) holds only generation work.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.models import MODEL, add_engine_arguments, model_dir, requests
from benchmarks.report import environment, write_json
from streamgen.fleet.processes import Fleet
from streamgen.fleet.supervisor import RestartPolicy, Supervisor, WorkerSlot, plan_slots

__all__ = ["bench_slot", "main"]

READY_TIMEOUT_S = 1800.0  # sd15 load + compile warm-up of every process


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report: dict[str, Any] = {"benchmark": "fleet scaling (local source)", "settings": vars(args)}
    report["environment"] = environment(with_torch=True)
    model = str(model_dir(args))  # written once here, not by every process
    wide = plan_slots(
        gpus=args.gpus if args.workers is None else None,
        workers=args.workers,
        device_count=_cuda_devices() if args.workers is None else 0,
        host=socket.gethostname(),
    )
    runs = {}
    for label, slots in (("one", wide[:1]), ("all", wide)):
        runs[label] = _run_fleet(slots, model, args)
        print(
            f"{label:3s} ({len(slots)} workers): {runs[label]['images']} images in "
            f"{runs[label]['seconds']:.2f}s = {runs[label]['images_per_s']:.2f} img/s",
            flush=True,
        )
    report["runs"] = runs
    report["speedup"] = round(runs["all"]["images_per_s"] / runs["one"]["images_per_s"], 3)
    print(f"speed-up with {len(wide)} workers over one: {report['speedup']:.2f}x (target >= 1.9x)")
    write_json(args.json, report)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-fleet", description=__doc__)
    add_engine_arguments(p, arch="sd15", size=512, steps=30)
    p.add_argument("--gpus", default="all", help="as for `streamgen fleet --gpus`")
    p.add_argument("--workers", type=int, help="N CPU workers instead of GPUs (to try it here)")
    p.add_argument("--requests-per-worker", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16, help="the workers' max batch size")
    p.add_argument("--max-wait-ms", type=int, default=200)
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    return p


def _cuda_devices() -> int:
    import torch

    count: int = torch.cuda.device_count()
    return count


def _run_fleet(slots: list[WorkerSlot], model: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="streamgen-fleet-") as work:
        shared = Path(work)
        params = {
            "bench.dir": str(shared),
            "bench.model": model,
            "bench.args": {k: v for k, v in vars(args).items() if k != "json"},
        }
        fleet = Fleet(
            slots,
            supervisor=Supervisor(RestartPolicy(max_crashes=1)),
            overrides=params,
            target=bench_slot,
        )
        codes: list[int] = []
        runner = threading.Thread(target=lambda: codes.append(fleet.run()), daemon=True)
        runner.start()
        _wait_for_files(shared, "ready", len(slots), runner)
        (shared / "go").touch()  # every process starts its timed work now
        runner.join()
        results = [json.loads(p.read_text()) for p in sorted(shared.glob("*.result"))]
        if codes != [0] or len(results) != len(slots):
            raise RuntimeError(f"fleet exited {codes}; {len(results)} of {len(slots)} reported")
    started = min(r["started"] for r in results)
    finished = max(r["finished"] for r in results)
    images = sum(r["images"] for r in results)
    return {
        "workers": len(slots),
        "images": images,
        "seconds": round(finished - started, 3),
        "images_per_s": round(images / (finished - started), 3),
        "per_worker": results,
    }


def _wait_for_files(shared: Path, suffix: str, count: int, runner: threading.Thread) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(list(shared.glob(f"*.{suffix}"))) < count:
        if not runner.is_alive():
            raise RuntimeError("the fleet ended before every worker was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers not ready after {READY_TIMEOUT_S:.0f}s")
        time.sleep(0.1)


def bench_slot(slot: WorkerSlot, overrides: Mapping[str, Any], _config_file: str | None) -> int:
    """A fleet child: load and warm the engine, wait for "go", run its share, report."""
    from benchmarks.local_source import LocalFeed, TimedRecord
    from benchmarks.models import on_engine_thread
    from benchmarks.worker_run import ProgressHooks
    from streamgen.contracts.codec import request_codec
    from streamgen.engine.engine import DiffusionEngine
    from streamgen.settings import EngineSettings, Settings, StoreSettings, WorkerSettings
    from streamgen.store import FileStore
    from streamgen.store.encode import encode_image

    shared = Path(overrides["bench.dir"])
    args = argparse.Namespace(**overrides["bench.args"])
    engine_settings = EngineSettings(
        models={MODEL: overrides["bench.model"]},
        device=slot.device,
        dtype=args.dtype,
        max_batch_size=args.batch_size,
    )
    engine = DiffusionEngine(engine_settings)
    tag = f"-{slot.worker_id}"
    on_engine_thread(
        lambda: engine.generate(list(requests(args.batch_size, args, tag=f"{tag}w", steps=2)))
    )
    images = shared / slot.worker_id
    settings = Settings(
        store=StoreSettings(url=f"file://{images}"),
        engine=engine_settings,
        worker=WorkerSettings(max_wait_ms=args.max_wait_ms, max_in_flight=3 * args.batch_size),
    )
    codec = request_codec(settings.kafka, "local.requests")
    records = [
        TimedRecord(r.request_id.encode(), codec.encode(r))
        for r in requests(args.requests_per_worker, args, tag=tag)
    ]
    (shared / f"{slot.worker_id}.ready").touch()
    while not (shared / "go").exists():
        time.sleep(0.05)
    started = time.time()
    hooks = ProgressHooks(settings, worker_id=slot.worker_id)
    feed = LocalFeed(
        settings, engine=engine, store=FileStore(images), encode=encode_image, hooks=hooks
    )
    run = feed.run(records)
    finished = started + (run.finished - run.first_admitted)
    result = {
        "worker": slot.worker_id,
        "device": str(engine.device),
        "images": len(run.summaries) - len(run.failures()),
        "failed": len(run.failures()),
        "started": started,
        "finished": finished,
        "gpu_busy_fraction": round(hooks.generate_seconds / run.seconds, 3),
        "mean_batch_size": round(hooks.mean_batch_size(), 2),
    }
    (shared / f"{slot.worker_id}.result").write_text(json.dumps(result))
    return 0 if not run.failures() else 1


if __name__ == "__main__":
    sys.exit(main())
