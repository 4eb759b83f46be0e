"""Family benchmark: stock diffusers against streamgen, one family at its usual settings.

    python -m benchmarks.families --family flux-dev --json docs/bench/flux-dev-h100.json

Builds the family's PUBLISHED architecture with random weights (``streamgen model init
--arch``; configurations in ``streamgen/engine/families/*_model.py``, from diffusers'
conversion scripts and the model repositories' config files), then times side by side, one
runner loaded at a time (two copies of FLUX.1 do not fit one H100):

- ``diffusers``: the stock pipeline (``FluxPipeline``, ``StableDiffusionXLPipeline``, ...);
- ``diffusers+compile``: the same with ``torch.compile`` on its transformer / UNet;
- ``streamgen``: the engine, eager; ``streamgen+KNOBS``: with ``--best-knobs``;
- ``streamgen+fp8``: ``--best-knobs`` plus ``engine.fp8_linear`` (transformer families on a GPU
  with FP8 tensor cores), the one path that changes images: its row also holds its drift from
  the ``streamgen`` runner's images for the same requests (max and mean pixel difference, PSNR).

Each runner reports batch-1 latency, images/s per batch size, TFLOP/s (FLOPs counted per step
by ``benchmarks.flops``), peak GPU memory and its untimed warm-up; the report also holds the
max pixel difference between streamgen and stock for the same requests. Every shape is run
once untimed first (compilation, cuDNN's search, graph capture), with as few steps as the
family accepts. On a machine without CUDA only ``--tiny`` runs (a smoke test of the same code
on the tiny architecture).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.drift import pixel_drift
from benchmarks.flops import flops_per_image
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.families import FAMILIES
from streamgen.engine.knobs import FP8_CAPABILITY
from streamgen.engine.model_init import write_model
from streamgen.engine.schedulers import make_scheduler
from streamgen.settings import EngineSettings

MODEL = "bench"
FP8 = "streamgen+fp8"


@dataclass(frozen=True)
class FamilyRun:
    """A family at its usual settings: MLPerf's for SDXL, the model cards' for FLUX.1."""

    arch: str
    tiny: str
    family: str
    size: int
    steps: int
    guidance: float
    scheduler: str
    stock_kwargs: tuple[tuple[str, Any], ...] = ()
    # The untimed warm-up's steps: few, but no fewer than the family accepts ([dev]: 28).
    warm_up_steps: int = 2
    # What streamgen's model mapping adds to the weights (NAME=PATH#PRESET), e.g. large-turbo:
    # a distilled checkpoint with its base model's configs.
    preset: str = ""


RUNS = {
    "flux-dev": FamilyRun("flux-dev", "tiny-flux-dev", "flux", 1024, 28, 3.5, "euler",
                          (("max_sequence_length", 512),), warm_up_steps=28),
    "flux-schnell": FamilyRun("flux-schnell", "tiny-flux-schnell", "flux", 1024, 4, 0.0,
                              "euler", (("max_sequence_length", 256),)),
    "sdxl": FamilyRun("sdxl", "tiny-sdxl", "sdxl", 1024, 20, 8.0, "euler"),
    "sd15": FamilyRun("sd15", "tiny", "sd15", 512, 30, 7.5, "dpmpp_2m"),
    # SD3.5's model cards: Large 28 steps at CFG 3.5, Medium 40 at 4.5, Large Turbo 4 without.
    "sd3.5-large": FamilyRun("sd3.5-large", "tiny-sd3-large", "sd3", 1024, 28, 3.5, "euler",
                             (("max_sequence_length", 256),)),
    "sd3.5-medium": FamilyRun("sd3.5-medium", "tiny-sd3-medium", "sd3", 1024, 40, 4.5, "euler",
                              (("max_sequence_length", 256),)),
    "sd3.5-large-turbo": FamilyRun("sd3.5-large", "tiny-sd3-large", "sd3", 1024, 4, 0.0, "euler",
                                   (("max_sequence_length", 256),), preset="large-turbo"),
    # FLUX.2 [klein] (distilled): 4 steps, no guidance, 512 prompt tokens (Flux2KleinPipeline).
    "flux2-klein-4b": FamilyRun("flux2-klein-4b", "tiny-flux2-klein", "flux2", 1024, 4, 0.0,
                                "euler", (("max_sequence_length", 512),), warm_up_steps=4),
    "flux2-klein-9b": FamilyRun("flux2-klein-9b", "tiny-flux2-klein", "flux2", 1024, 4, 0.0,
                                "euler", (("max_sequence_length", 512),), warm_up_steps=4),
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run = RUNS[args.family]
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print(
            f"{args.family} at its published size needs a CUDA GPU (FLUX.1 is 17 billion "
            "parameters with T5-XXL); pass --tiny to smoke-test this benchmark on the CPU",
            file=sys.stderr,
        )
        return 2
    size, steps = (args.size or (64 if args.tiny else run.size)), (args.steps or run.steps)
    directory = _model(run, args.tiny, cuda)
    _progress(f"model at {directory}")
    requests = _requests(run, size, steps, max(args.batch_sizes))
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "family": args.family,
        "architecture": run.tiny if args.tiny else run.arch,
        "settings": {"size": size, "steps": steps, "guidance": run.guidance,
                     "scheduler": run.scheduler, "best_knobs": args.best_knobs},
        "versions": _versions(),
        "runners": {},
    }  # fmt: skip
    knobs = [k for k in args.best_knobs.split(",") if k] if cuda else []
    source = f"{directory}#{run.preset}" if run.preset else str(directory)
    top = max(args.batch_sizes)
    runners: dict[str, Callable[[], Callable[[list[GenerationRequest]], list[Any]]]] = {
        "diffusers": lambda: _stock(directory, run, compiled=False),
        "streamgen": lambda: _streamgen(source, (), report, top),
    }
    if cuda:
        runners["diffusers+compile"] = lambda: _stock(directory, run, compiled=True)
        runners["streamgen+" + "+".join(knobs)] = lambda: _streamgen(source, knobs, None, top)
        if FAMILIES[run.family].fp8_blocks and torch.cuda.get_device_capability() >= FP8_CAPABILITY:
            runners[FP8] = lambda: _streamgen(source, [*knobs, "fp8_linear"], None, top)
    if args.runners:  # a subset, in the order given (the device's 10-minute calls)
        unknown = sorted(set(args.runners) - set(runners))
        if unknown:
            print(f"--runners: no runner {unknown} here; these are: {sorted(runners)}",
                  file=sys.stderr)  # fmt: skip
            return 2
        runners = {name: runners[name] for name in args.runners}
    images: dict[str, list[Any]] = {}
    for name, make in runners.items():
        _progress(f"runner {name}: loading")
        compared = name in ("diffusers", "streamgen", FP8)  # whose images the report compares
        report["runners"][name], images[name] = _time_runner(make, requests, run, args, compared)
        _write(args.json, report)  # each runner's row kept, should a later one not finish
    if "diffusers" in images and "streamgen" in images:
        report["max_pixel_diff_vs_stock"] = max(
            int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
            for a, b in zip(images["streamgen"], images["diffusers"], strict=True)
        )
    if FP8 in images and "streamgen" in images:  # the path that changes images: how much
        report["runners"][FP8]["drift_vs_streamgen"] = pixel_drift(images[FP8], images["streamgen"])
    flops = report.get("tflop_per_image", 0.0)
    for row in report["runners"].values():
        for point in row["batches"]:
            point["tflops"] = point["images_per_s"] * flops
    print(json.dumps(report, indent=2))
    _write(args.json, report)
    return 0


def _write(path: str | None, report: dict[str, Any]) -> None:
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
    p.add_argument("--best-knobs", default="compile,cuda_graphs",
                   help="engine knobs of the streamgen+ runner (CUDA only)")  # fmt: skip
    p.add_argument("--runners", type=lambda s: [x for x in s.split(",") if x], default=[],
                   help="only these runners, in this order (default: all)")  # fmt: skip
    p.add_argument("--json", help="write the report here (docs/bench/...)")
    return p


def _model(run: FamilyRun, tiny: bool, cuda: bool) -> Path:
    arch = run.tiny if tiny else run.arch
    out = Path(tempfile.gettempdir()) / f"streamgen-bench-{arch}"
    if not (out / "model_index.json").exists():
        dtype = FAMILIES[run.family].cuda_dtype if cuda else torch.float32
        _progress(f"writing {arch} ({dtype}) to {out}")
        write_model(arch, out, device="cuda" if cuda else "cpu", dtype=dtype)
    return out


def _requests(run: FamilyRun, size: int, steps: int, n: int) -> list[GenerationRequest]:
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


def _streamgen(
    source: str, knobs: Sequence[str], report: dict[str, Any] | None, max_batch: int
) -> Callable[[list[GenerationRequest]], list[Any]]:
    flags: dict[str, Any] = dict.fromkeys(knobs, True)  # each knob is a boolean setting
    # The largest batch timed, as stock runs it: no probe for what fits (the worker's first
    # sight of a shape), and CUDA graphs captured only for the batch sizes timed.
    flags["max_batch_size"] = max_batch
    settings = dataclasses.replace(EngineSettings(models={MODEL: source}), **flags)
    engine = DiffusionEngine(settings)
    if report is not None:  # FLOPs of the model, counted once, eagerly
        first = engine.parts(MODEL)
        size = report["settings"]["size"]
        counted = flops_per_image(engine, MODEL, size, report["settings"]["steps"])
        report["tflop_per_image"] = counted["image"] / 1e12
        report["tflop_per_step"] = counted["step"] / 1e12
        report["dtype"] = str(first.dtype)

    def call(requests: list[GenerationRequest]) -> list[Any]:
        outcomes = engine.generate(requests)
        failed = [o.error for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(f"streamgen failed: {failed[0]}")
        return [o.images[0] for o in outcomes]

    return call


def _stock(
    directory: Path, run: FamilyRun, *, compiled: bool
) -> Callable[[list[GenerationRequest]], list[Any]]:
    import diffusers

    cuda = torch.cuda.is_available()
    dtype = FAMILIES[run.family].cuda_dtype if cuda else torch.float32
    loader: Any = diffusers.DiffusionPipeline
    pipe = loader.from_pretrained(directory, dtype=dtype, local_files_only=True)
    table = FAMILIES[run.family].scheduler_table
    pipe.scheduler = make_scheduler(run.scheduler, dict(pipe.scheduler.config), table)
    pipe.to("cuda" if cuda else "cpu")
    pipe.set_progress_bar_config(disable=True)
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    if compiled:
        denoiser.compile()  # diffusers' recipe: torch.compile on the denoiser, nothing else

    kwargs = dict(run.stock_kwargs)
    if "max_sequence_length" in kwargs:  # as streamgen: capped by what the tokenizer holds
        # SD3's T5 is the third tokenizer, FLUX.1's the second; FLUX.2's Qwen3 one the only one.
        t5 = getattr(pipe, "tokenizer_3", None) or getattr(pipe, "tokenizer_2", None)
        t5 = t5 or pipe.tokenizer
        kwargs["max_sequence_length"] = min(kwargs["max_sequence_length"], t5.model_max_length)

    def call(requests: list[GenerationRequest]) -> list[Any]:
        first = requests[0]
        images: list[Any] = pipe(
            prompt=[r.prompt for r in requests],
            height=first.height,
            width=first.width,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance_scale,
            generator=[torch.Generator("cpu").manual_seed(r.seed or 0) for r in requests],
            **kwargs,
        ).images
        return images

    return call


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
    _progress(f"loaded in {time.perf_counter() - start:.1f} s; warming up")
    short = [r.replace(steps=min(r.steps, run.warm_up_steps)) for r in requests]
    for n in args.batch_sizes:
        call(short[:n])
    row: dict[str, Any] = {"load_and_warm_up_s": time.perf_counter() - start, "batches": []}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    latency = float(np.median([_timed(lambda: call(requests[:1])) for _ in range(args.repeats)]))
    row["batch_1_latency_s"] = latency
    for n in args.batch_sizes:
        seconds = latency if n == 1 else _timed(lambda n=n: call(requests[:n]))  # type: ignore[misc]
        row["batches"].append({"batch_size": n, "seconds": seconds, "images_per_s": n / seconds})
    row["best_images_per_s"] = max(b["images_per_s"] for b in row["batches"])
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0
    images = call(requests[:2]) if compared else []
    print(json.dumps(row), flush=True)
    return row, images


_STARTED = time.perf_counter()


def _progress(what: str) -> None:
    """A line on stderr with the seconds since start: where a device call's time went."""
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {what}", file=sys.stderr, flush=True)


def _timed(fn: Callable[[], object]) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _versions() -> dict[str, str]:
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
