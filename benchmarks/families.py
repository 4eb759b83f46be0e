"""Family benchmark: stock diffusers against streamgen, one family at its usual settings.

    python -m benchmarks.families --family flux-dev --json docs/bench/flux-dev-h100.json

Builds the family's PUBLISHED architecture with random weights (``streamgen model init
--arch``; configurations in ``streamgen/engine/families/*_model.py``, from diffusers'
conversion scripts and the model repositories' config files), then times side by side, one
runner loaded at a time (two copies of FLUX.1 do not fit one H100):

- ``diffusers``: the stock pipeline (``FluxPipeline``, ``StableDiffusionXLPipeline``, ...);
- ``diffusers+compile``: the same with ``torch.compile`` on its transformer / UNet;
- ``streamgen``: the engine, eager; ``streamgen+KNOBS``: with ``--best-knobs`` (engine
  settings: ``NAME`` turns ``engine.NAME`` on, ``NAME=VALUE`` sets it, e.g.
  ``compile,cuda_graphs,fuse_qkv,compile_mode=max-autotune``; its runner's name joins them
  with ``+``; repeat ``--best-knobs`` for one runner per set). Each one's images are compared
  with eager streamgen's (``drift_vs_streamgen``): only FP8 may move them beyond rounding;
- ``streamgen+fp8``: the first ``--best-knobs`` plus ``engine.fp8_linear`` (transformer families
  on a GPU with FP8 tensor cores), the one path that changes images: its drift from the
  ``streamgen`` runner's images for the same requests (max and mean pixel difference, PSNR).

Each runner reports batch-1 latency, images/s per batch size, TFLOP/s (FLOPs counted per step
by ``benchmarks.flops``), peak GPU memory and its untimed warm-up; the report also holds the
max pixel difference between streamgen and stock for the same requests. Every shape is run
once untimed first (compilation, cuDNN's search, graph capture), with as few steps as the
family accepts. ``--profile`` adds, per runner, where one batch-1 call's time went
(``benchmarks.runner_profile``: attention, matrix products, everything else, the top kernels,
and the gaps between kernels). On a machine without CUDA only ``--tiny`` runs (a smoke test of
the same code on the tiny architecture; its profile counts operators' CPU time).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.drift import pixel_drift
from benchmarks.family_runners import MODEL, RUNS, FamilyRun, knob_settings, runners_for
from benchmarks.runner_profile import profile_call
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.families import FAMILIES
from streamgen.engine.model_init import write_model
from streamgen.errors import ConfigError

__all__ = [
    "family_requests",
    "main",
    "model_directory",
    "progress",
    "timed",
    "versions",
    "write_report",
]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.best_knobs = args.best_knobs or ["compile,cuda_graphs"]  # append's default, not kept
    run = RUNS[args.family]
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print(
            f"{args.family} at its published size needs a CUDA GPU (FLUX.1 is 17 billion "
            "parameters with T5-XXL); pass --tiny to smoke-test this benchmark on the CPU",
            file=sys.stderr,
        )
        return 2
    knob_sets = [[k.strip() for k in text.split(",") if k.strip()] for text in args.best_knobs]
    try:  # a misspelt knob or value stops here, before a model is written or loaded
        for knobs in knob_sets:
            if not knobs:
                raise ConfigError("--best-knobs", "an empty set; the streamgen runner has none")
            knob_settings(knobs)
    except ConfigError as exc:
        print(f"--best-knobs: {exc}", file=sys.stderr)
        return 2
    size, steps = (args.size or (64 if args.tiny else run.size)), (args.steps or run.steps)
    directory = model_directory(run, args.tiny, cuda)
    progress(f"model at {directory}")
    requests = family_requests(run, size, steps, max(args.batch_sizes))
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "family": args.family,
        "architecture": run.tiny if args.tiny else run.arch,
        "settings": {"size": size, "steps": steps, "guidance": run.guidance,
                     "scheduler": run.scheduler, "best_knobs": args.best_knobs},
        "versions": versions(),
        "runners": {},
    }  # fmt: skip
    runners = runners_for(run, directory, knob_sets, report, max(args.batch_sizes))
    if args.runners:  # a subset, in the order given (the device's 10-minute calls)
        unknown = sorted(set(args.runners) - set(runners))
        if unknown:
            print(f"--runners: no runner {unknown} here; these are: {sorted(runners)}",
                  file=sys.stderr)  # fmt: skip
            return 2
        runners = {name: runners[name] for name in args.runners}
    images: dict[str, list[Any]] = {}
    for name, make in runners.items():
        progress(f"runner {name}: loading")
        compared = name.startswith(("diffusers", "streamgen")) and name != "diffusers+compile"
        report["runners"][name], images[name] = _time_runner(make, requests, run, args, compared)
        write_report(args.json, report)  # each runner's row kept, should a later one not finish
    _compare(report, images)
    flops = report.get("tflop_per_image", 0.0)
    for row in report["runners"].values():
        for point in row["batches"]:
            point["tflops"] = point["images_per_s"] * flops
    print(json.dumps(report, indent=2))
    write_report(args.json, report)
    return 0


def _compare(report: dict[str, Any], images: dict[str, list[Any]]) -> None:
    """streamgen's images against stock's, and each knob set's against streamgen's eager ones
    (FP8 is the set that may change them; the others must not beyond rounding)."""
    if "diffusers" in images and "streamgen" in images:
        report["max_pixel_diff_vs_stock"] = max(
            int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
            for a, b in zip(images["streamgen"], images["diffusers"], strict=True)
        )
    for name, tuned in images.items():
        if name.startswith("streamgen+") and "streamgen" in images:
            report["runners"][name]["drift_vs_streamgen"] = pixel_drift(tuned, images["streamgen"])


def write_report(path: str | None, report: dict[str, Any]) -> None:
    """The report as JSON at ``path`` (``--json``), if one was given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-families", description=__doc__)
    p.add_argument("--family", choices=sorted(RUNS), required=True)
    p.add_argument("--tiny", action="store_true", help="the tiny architecture (CPU smoke test)")
    p.add_argument("--size", type=int, default=0, help="default: the family's usual size")
    p.add_argument("--steps", type=int, default=0, help="default: the family's usual steps")
    p.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 2, 4, 8])  # fmt: skip
    p.add_argument("--repeats", type=int, default=3, help="timed calls at batch 1 (median)")
    p.add_argument("--best-knobs", action="append",
                   help="engine settings of a streamgen+ runner (CUDA only; default "
                        "compile,cuda_graphs): NAME turns engine.NAME on, NAME=VALUE sets it "
                        "(compile_mode=max-autotune); repeat for one runner per set",
                   )  # fmt: skip
    p.add_argument("--profile", action="store_true",
                   help="after timing each runner, profile one batch-1 call: kernel time by "
                        "group (attention, gemm, other), top kernels, gaps")  # fmt: skip
    p.add_argument("--runners", type=lambda s: [x for x in s.split(",") if x], default=[],
                   help="only these runners, in this order (default: all)")  # fmt: skip
    p.add_argument("--json", help="write the report here (docs/bench/...)")
    return p


def model_directory(run: FamilyRun, tiny: bool, cuda: bool) -> Path:
    """The family's pipeline with random weights (published or tiny architecture), written
    once into the temp dir in the dtype the engine runs it in."""
    arch = run.tiny if tiny else run.arch
    out = Path(tempfile.gettempdir()) / f"streamgen-bench-{arch}"
    if not (out / "model_index.json").exists():
        dtype = FAMILIES[run.family].cuda_dtype if cuda else torch.float32
        progress(f"writing {arch} ({dtype}) to {out}")
        write_model(arch, out, device="cuda" if cuda else "cpu", dtype=dtype)
    return out


def family_requests(run: FamilyRun, size: int, steps: int, n: int) -> list[GenerationRequest]:
    """``n`` requests at the family's usual guidance and scheduler, each its own seed."""
    return [
        GenerationRequest(
            request_id=f"bench-{i}",
            prompt=f"a photograph of an astronaut riding horse number {i}",
            model=MODEL,
            width=size,
            height=size,
            steps=steps,
            guidance_scale=run.guidance,
            seed=1000 + i,
            scheduler=run.scheduler,
        )
        for i in range(n)
    ]


def _time_runner(
    make: Callable[[], Callable[[list[GenerationRequest]], list[Any]]],
    requests: list[GenerationRequest],
    run: FamilyRun,
    args: argparse.Namespace,
    compared: bool,
) -> tuple[dict[str, Any], list[Any]]:
    """Load, warm every batch size up untimed (``run.warm_up_steps``), then time."""
    gc.collect()  # the previous runner's model, gone with its frame, before this one loads
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    start = time.perf_counter()
    call = make()
    progress(f"loaded in {time.perf_counter() - start:.1f} s; warming up")
    short = [r.replace(steps=min(r.steps, run.warm_up_steps)) for r in requests]
    for n in args.batch_sizes:
        call(short[:n])
    row: dict[str, Any] = {"load_and_warm_up_s": time.perf_counter() - start, "batches": []}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    latency = float(np.median([timed(lambda: call(requests[:1])) for _ in range(args.repeats)]))
    row["batch_1_latency_s"] = latency
    for n in args.batch_sizes:
        seconds = latency if n == 1 else timed(lambda n=n: call(requests[:n]))  # type: ignore[misc]
        row["batches"].append({"batch_size": n, "seconds": seconds, "images_per_s": n / seconds})
    row["best_images_per_s"] = max(b["images_per_s"] for b in row["batches"])
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0
    images = call(requests[:2]) if compared else []
    if args.profile:  # after the timing, which the profiler would slow
        progress("profiling one batch-1 call")
        row["profile"] = profile_call(lambda: call(requests[:1]))
    print(json.dumps(row), flush=True)
    return row, images


_STARTED = time.perf_counter()


def progress(what: str) -> None:
    """A line on stderr with the seconds since start: where a device call's time went."""
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {what}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` took, the GPU's queued work included."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def versions() -> dict[str, str]:
    """The report's ``versions``: what the figures were measured with."""
    import diffusers
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


if __name__ == "__main__":
    sys.exit(main())
