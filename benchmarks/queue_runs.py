"""What the in-process queue benchmarks (cancellation, progress) share: the tiny engine on the
CPU warmed at every batch size a run may form, the worker fed from memory over it, and runs
interleaved by round so that a loaded machine's drift hits every scenario alike."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.local_source import LocalFeed
from benchmarks.models import MODEL, model_dir, on_engine_thread, requests
from benchmarks.report import environment
from benchmarks.worker_run import ProgressHooks
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.types import Engine
from streamgen.settings import EngineSettings, Settings, StoreSettings, WorkerSettings
from streamgen.worker.cancels import CancelSet
from streamgen.worker.progress_publisher import ProgressPublisher

__all__ = ["cpu_engine", "interleaved", "queue_feed"]

Run = dict[str, Any]


def cpu_engine(args: argparse.Namespace, report: dict[str, Any]) -> DiffusionEngine:
    """The engine of ``args`` on the CPU (``--threads`` torch threads), warmed up; the
    environment goes into ``report``."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    report["environment"] = {
        **environment(with_torch=True),
        "torch_threads": torch.get_num_threads(),
    }
    engine = DiffusionEngine(
        EngineSettings(models={MODEL: str(model_dir(args))}, device="cpu", max_batch_size=64)
    )
    for n in range(1, args.batch + 1):  # every batch size a run may form: none pays a first call
        on_engine_thread(lambda n=n: engine.generate(list(requests(n, args, tag="-warm"))))  # type: ignore[misc]
    return engine


def interleaved(
    rounds: int, scenarios: Iterable[str], run: Callable[[str], Run], label: str = ""
) -> dict[str, list[Run]]:
    """``run(scenario)`` for every scenario, ``rounds`` times in turn, each printed. Each round
    starts one scenario further on: the first run of a round was seen slower every time."""
    runs: dict[str, list[Run]] = {scenario: [] for scenario in scenarios}
    order = list(runs)
    for n in range(rounds):
        for scenario in order[n % len(order) :] + order[: n % len(order)]:
            runs[scenario].append(out := run(scenario))
            print(f"{label}{scenario:>12}: {out}", flush=True)
    return runs


def queue_feed(
    args: argparse.Namespace,
    engine: Engine,
    images: str,
    worker_id: str,
    *,
    worker: dict[str, Any] | None = None,
    cancels: CancelSet | None = None,
    progress: ProgressPublisher | None = None,
) -> tuple[LocalFeed, ProgressHooks]:
    """The worker fed from memory (``LocalFeed``) over ``engine``, storing into the directory
    ``images``, its batches of at most ``--batch``; ``worker``: more worker settings."""
    from streamgen.store import FileStore
    from streamgen.store.encode import encode_image

    settings = Settings(
        store=StoreSettings(url=f"file://{images}"),
        engine=EngineSettings(models={MODEL: str(model_dir(args))}, device="cpu"),
        worker=WorkerSettings(max_wait_ms=50, max_in_flight=3 * args.batch, **(worker or {})),
    )
    hooks = ProgressHooks(settings, worker_id=worker_id)
    feed = LocalFeed(
        settings,
        engine=engine,
        store=FileStore(images),
        encode=encode_image,
        hooks=hooks,
        max_batch_size=lambda _shape: args.batch,
        cancels=cancels,
        progress=progress,
    )
    return feed, hooks
