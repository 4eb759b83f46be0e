"""Engine benchmark: images/s per batch size, achieved TFLOP/s, peak memory, stock baseline.

Run through ``scripts/bench-engine``. Not a test: it prints a table and writes JSON. Timings
are end to end for a ``generate`` call (prompt encoding, denoising, VAE decode, PIL images);
each batch size is first run once with 2 steps, untimed, so cuDNN's algorithm search and any
``torch.compile`` work for that tensor shape are not counted (their cost is reported apart).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.cost import usd_per_1000_images
from benchmarks.flops import flops_per_image
from benchmarks.models import add_cudnn_argument, engine_settings
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.families import PipelineParts
from streamgen.engine.model_init import write_model

KNOBS = (
    "channels_last",
    "fuse_qkv",
    "compile",
    "aot_compile",
    "cuda_graphs",
    "vae_slicing",
    "cpu_offload",
    "xformers",
)


@dataclass
class Row:
    runner: str
    batch_size: int
    seconds_per_batch: float
    images_per_s: float
    tflops: float
    peak_gib: float
    usd_per_1000_images: float | None = None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    model_dir = _model_dir(args)
    knobs = set(args.knob)
    settings = engine_settings(
        args,
        models={"bench": str(model_dir)},
        compile_cache_dir=args.compile_cache_dir,
        max_batch_size=max(args.batch_sizes),
    )
    engine = DiffusionEngine(settings)
    parts = engine.parts("bench")
    flops = _flops_per_image(engine, parts, args)
    label = "+".join(sorted(knobs)) or "default"
    print(f"# {label}: {flops / 1e12:.2f} TFLOP per image ({args.size}px, {args.steps} steps, CFG)")
    warm_start = time.perf_counter()
    # As a worker warms up (largest bucket first), so a compile cache written by one matches.
    engine.warm_up([engine.shape_of(_requests(1, args)[0])])
    for size in (*args.batch_sizes, *([1] if args.alone else [])):
        engine.generate(_requests(size, args, steps=2))
    warm_up_s = time.perf_counter() - warm_start
    rows = [
        _measure(f"streamgen[{label}]", n, flops, _engine_call(engine, args), args.repeats)
        for n in args.batch_sizes
    ]
    alone_ips = float("nan")
    if args.alone:
        alone_s = _timed(lambda: [engine.generate([r]) for r in _requests(args.alone, args)])[0]
        alone_ips = args.alone / alone_s
    if args.stock:
        stock = _stock_call(parts, args)
        for n in args.batch_sizes:  # same untimed 2-step warm-up per shape as streamgen gets
            _measure("diffusers stock (warm-up)", n, flops, partial(stock, steps=2))
        timed_stock = partial(stock, steps=args.steps)
        rows += [_measure("diffusers stock", n, flops, timed_stock) for n in args.batch_sizes]
    best = max(r.images_per_s for r in rows if r.runner.startswith("streamgen"))
    if args.gpu_hour_price is not None:
        for row in rows:
            row.usd_per_1000_images = usd_per_1000_images(row.images_per_s, args.gpu_hour_price)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor(),
        "versions": _versions(),
        "settings": {
            "knobs": label,
            "size": args.size,
            "steps": args.steps,
            "dtype": args.dtype,
            "arch": None if args.model else args.arch,
            "repeats": args.repeats,
            "cudnn_benchmark": args.cudnn_benchmark,
        },
        "tflop_per_image": flops / 1e12,
        "warm_up_s": warm_up_s,
        "one_at_a_time_images_per_s": alone_ips,
        "best_batched_over_one_at_a_time": best / alone_ips,
        "cuda_graphs_captured": engine.graph_count(),
        "rows": [asdict(r) for r in rows],
    }
    if args.gpu_hour_price is not None:
        report["gpu_hour_usd"] = args.gpu_hour_price
        report["usd_per_1000_images_at_best"] = usd_per_1000_images(best, args.gpu_hour_price)
    if args.stock:
        report["max_pixel_diff_vs_stock"] = _diff_vs_stock(engine, parts, args)
    _print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-engine", description=__doc__)
    p.add_argument("--arch", default="sd15", help="architecture to init when --model is not given")
    p.add_argument("--model", help="pipeline directory (default: init --arch into a temp dir)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--dtype", default="auto")
    p.add_argument(
        "--batch-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 4, 8, 16, 32, 64],
    )
    p.add_argument("--alone", type=int, default=4, help="requests in the one-at-a-time loop")
    p.add_argument("--knob", action="append", default=[], choices=KNOBS)
    p.add_argument("--stock", action="store_true", help="also time StableDiffusionPipeline")
    p.add_argument("--repeats", type=int, default=1, help="timed calls per batch size (median)")
    p.add_argument("--compile-cache-dir", default="", help="engine.compile_cache_dir")
    add_cudnn_argument(p)
    p.add_argument(
        "--gpu-hour-price",
        type=float,
        metavar="USD",
        help="price of one GPU-hour: adds dollars per 1,000 images to every row",
    )
    p.add_argument("--json", help="write the report here")
    return p


def _model_dir(args: argparse.Namespace) -> Path:
    if args.model:
        return Path(args.model)
    out = Path(tempfile.gettempdir()) / f"streamgen-bench-{args.arch}"
    if not (out / "model_index.json").exists():
        device = "cuda" if torch.cuda.is_available() else "cpu"
        write_model(
            args.arch,
            out,
            device=device,
            dtype=torch.float16 if device == "cuda" else torch.float32,
        )
    return out


def _requests(
    n: int, args: argparse.Namespace, *, steps: int | None = None
) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"bench-{n}-{i}",
            prompt=f"a photograph of an astronaut riding horse number {i}",
            negative_prompt="blurry, low quality",
            model="bench",
            width=args.size,
            height=args.size,
            steps=steps or args.steps,
            guidance_scale=args.guidance,
            seed=1000 + i,
            scheduler="dpmpp_2m",
        )
        for i in range(n)
    ]


def _engine_call(engine: DiffusionEngine, args: argparse.Namespace) -> Callable[[int], object]:
    def call(n: int) -> object:
        outcomes = engine.generate(_requests(n, args))
        failed = [o.error for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(f"benchmark batch failed: {failed[0]}")
        return outcomes

    return call


def _stock_call(parts: PipelineParts, args: argparse.Namespace) -> Callable[..., object]:
    import diffusers

    pipeline_cls: Any = diffusers.StableDiffusionPipeline
    scheduler_cls: Any = diffusers.DPMSolverMultistepScheduler
    pipe = pipeline_cls(
        **{k: getattr(parts.pipeline, k) for k in ("vae", "text_encoder", "tokenizer", "unet")},
        scheduler=scheduler_cls.from_config(parts.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)

    def call(n: int, steps: int) -> object:
        requests = _requests(n, args)
        return pipe(
            prompt=[r.prompt for r in requests],
            negative_prompt=[r.negative_prompt for r in requests],
            height=args.size,
            width=args.size,
            num_inference_steps=steps,
            guidance_scale=args.guidance,
            generator=[torch.Generator("cpu").manual_seed(r.seed or 0) for r in requests],
        ).images

    return call


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def _measure(
    runner: str, n: int, flops: float, call: Callable[[int], object], repeats: int = 1
) -> Row:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        seconds = float(np.median([_timed(lambda: call(n))[0] for _ in range(max(repeats, 1))]))
    except Exception as exc:  # stock diffusers has no OOM fallback: report, do not stop
        print(f"{runner:32s} batch {n:3d}: failed: {type(exc).__name__}: {str(exc)[:200]}")
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        return Row(runner, n, float("nan"), 0.0, 0.0, 0.0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    row = Row(runner, n, seconds, n / seconds, n * flops / seconds / 1e12, peak)
    print(
        f"{runner:32s} batch {n:3d}: {seconds:7.2f} s  {row.images_per_s:6.2f} img/s  "
        f"{row.tflops:6.1f} TFLOP/s  {peak:6.1f} GiB",
        flush=True,
    )
    return row


def _flops_per_image(
    engine: DiffusionEngine, parts: PipelineParts, args: argparse.Namespace
) -> float:
    """FLOPs of one image: text encoding + steps x one CFG UNet call + one VAE decode, batch 1."""
    return flops_per_image(engine, parts.name, args.size, args.steps)["image"]


def _diff_vs_stock(engine: DiffusionEngine, parts: PipelineParts, args: argparse.Namespace) -> int:
    """Max abs pixel difference (0-255) between streamgen and stock diffusers, same requests."""
    ours = [o.images[0] for o in engine.generate(_requests(2, args))]
    theirs: Any = _stock_call(parts, args)(2, args.steps)
    return int(
        max(
            np.abs(np.asarray(a, int) - np.asarray(b, int)).max()
            for a, b in zip(ours, theirs, strict=True)
        )
    )


def _versions() -> dict[str, str]:
    import diffusers
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


def _print(report: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
