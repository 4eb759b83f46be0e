"""Start-up benchmark: a fresh worker process to its first image, cold and then warm.

Run through ``scripts/bench-startup``. The parent writes the model once (not timed), then
starts two child processes one after the other with the same ``engine.compile_cache_dir``:
the first finds it empty (cold: everything compiles), the second finds what the first saved
(warm). Each child does what a worker does before it joins the group — import, load the
model, warm up ``engine.warmup_shapes`` at every batch bucket — and then generates one
request. The figure is wall time from the parent's spawn to the child's first image, so the
interpreter's start and torch's import count too.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.models import MODEL, add_engine_arguments, engine_settings, model_dir, requests

KNOBS = ("compile", "aot_compile", "cuda_graphs", "fuse_qkv", "channels_last")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        return _child(args)
    model = model_dir(args)
    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="streamgen-compile-cache-"))
    filled = cache.exists() and any(cache.iterdir())
    if filled != args.warm_only:
        print(f"--cache-dir {cache} must be {'filled' if args.warm_only else 'empty'}", flush=True)
        return 2
    runs = {}
    kinds = ("warm",) if args.warm_only else ("cold",) if args.cold_only else ("cold", "warm")
    for kind in kinds:
        profile = args.profile_warm if kind == "warm" else None
        try:
            runs[kind] = _spawn(args, model, cache, profile)
        except RuntimeError as exc:
            if not profile:
                raise
            # A machine that forbids py-spy's ptrace: the figure still counts, unprofiled.
            print(f"profiled {kind} start failed ({exc}): again without py-spy", flush=True)
            runs[kind] = _spawn(args, model, cache, None)
        print(f"{kind}: {runs[kind]['to_first_image_s']:.1f} s to the first image", flush=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": runs[kinds[-1]]["device"],
        "versions": runs[kinds[-1]]["versions"],
        "settings": {
            "knobs": "+".join(sorted(args.knob)) or "default",
            "size": args.size,
            "steps": args.steps,
            "max_batch_size": args.max_batch_size,
            "cudnn_benchmark": args.cudnn_benchmark,
            "arch": None if args.model else args.arch,
        },
        "cold_start_to_first_image_s": runs["cold"]["to_first_image_s"] if "cold" in runs else None,
        "warm_start_to_first_image_s": runs["warm"]["to_first_image_s"] if "warm" in runs else None,
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-startup", description=__doc__)
    add_engine_arguments(p, arch="sd15", size=512, steps=30)
    p.add_argument("--knob", action="append", default=[], choices=KNOBS)
    p.add_argument("--max-batch-size", type=int, default=8, help="largest bucket warmed up")
    p.add_argument("--cache-dir", help="an empty or new directory (default: a new temp dir)")
    p.add_argument(
        "--warm-only",
        action="store_true",
        help="only the warm start, over a --cache-dir some earlier run filled",
    )
    p.add_argument("--cold-only", action="store_true", help="only the cold start")
    p.add_argument("--json", help="write the report here")
    p.add_argument(
        "--profile-warm",
        metavar="PATH",
        help="sample the warm start with py-spy into PATH: collapsed stacks per thread, native "
        "frames and idle time included",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    return p


def _spawn(
    args: argparse.Namespace, model: Path, cache: Path, profile: str | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.startup",
        "--child",
        "--model",
        str(model),
        "--cache",
        str(cache),
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--max-batch-size",
        str(args.max_batch_size),
        "--cudnn-benchmark",
        args.cudnn_benchmark,
        *(f"--knob={k}" for k in args.knob),
    ]
    if profile:
        spy = shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--profile-warm needs py-spy on PATH")
        sampling = ["record", "--native", "--idle", "--threads", "--rate", "50"]
        sampling += ["--format", "raw", "-o", profile]
        command = [spy, *sampling, "--", *command]
    start = time.perf_counter()
    # The child prints one JSON line the moment it has its first image; the time that line
    # arrives is the figure (interpreter and CUDA teardown afterwards are not start-up).
    report: dict[str, Any] | None = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("{") and report is None:
                took = time.perf_counter() - start
                report = {**json.loads(line), "to_first_image_s": took}
    if child.returncode != 0 or report is None:
        raise RuntimeError(f"start-up child exited {child.returncode} before its first image")
    return report


def _child(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    import logging

    import torch

    # Timestamped engine log lines (load, each capture, warm-up) show where start-up goes.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from streamgen.engine.engine import DiffusionEngine
    from streamgen.engine.schedulers import SCHEDULERS
    from streamgen.engine.warmup import parse_entry, parse_warmup_shapes

    imported = time.perf_counter()
    if torch.cuda.is_available() and args.device != "cpu":
        torch.zeros(1, device="cuda")  # CUDA context: part of every start, timed on its own
    cuda_ready = time.perf_counter()
    warmup = (parse_entry(f"{args.size}x{args.size}x{args.steps}@{MODEL}"),)
    settings = engine_settings(
        args,
        models={MODEL: args.model},
        device=args.device,
        max_batch_size=args.max_batch_size,
        compile_cache_dir=args.cache,
        warmup_shapes=warmup,
    )
    engine = DiffusionEngine(settings)
    loaded = time.perf_counter()
    shapes = parse_warmup_shapes(
        warmup, default_scheduler=settings.default_scheduler, models=[MODEL], schedulers=SCHEDULERS
    )
    engine.warm_up(shapes)
    warmed = time.perf_counter()
    (outcome,) = engine.generate(list(requests(1, args, tag="-first")))
    if not outcome.ok:
        raise RuntimeError(f"first image failed: {outcome.error}")
    first = time.perf_counter()
    report = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.machine(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "import_s": imported - began,
        "cuda_init_s": cuda_ready - imported,
        "load_s": loaded - cuda_ready,
        "warm_up_s": warmed - loaded,
        "first_image_s": first - warmed,
        "cuda_graphs_captured": engine.graph_count(),
        "aot_packages": engine.aot_packages(),
        "cache_files": sum(1 for p in Path(args.cache).rglob("*") if p.is_file()),
    }
    print(json.dumps(report), flush=True)
    from torch._dynamo.utils import compile_times

    # After the figure: where the compiler's share of the warm-up went, per phase.
    print(compile_times(repr="str"), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
