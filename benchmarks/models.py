"""The diffusion engine a benchmark runs: a pipeline directory, loaded as the worker loads it."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from streamgen.contracts.request import GenerationRequest
from streamgen.settings import EngineSettings

__all__ = [
    "MODEL",
    "add_cudnn_argument",
    "add_engine_arguments",
    "engine_settings",
    "model_dir",
    "on_engine_thread",
    "requests",
]

MODEL = "bench"  # the logical model name benchmark requests ask for


def add_engine_arguments(p: argparse.ArgumentParser, *, arch: str, size: int, steps: int) -> None:
    p.add_argument(
        "--arch",
        default=arch,
        help="tiny|sd15|sdxl: random weights, written once (default: %(default)s)",
    )
    p.add_argument("--model", help="a pipeline directory instead of --arch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--dtype", default="auto", help="auto (fp16 on CUDA) | float16 | bfloat16")
    p.add_argument("--size", type=int, default=size, help="width and height in pixels")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--guidance", type=float, default=7.5)
    add_cudnn_argument(p)


def add_cudnn_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cudnn-benchmark",
        choices=("true", "false"),
        default="true",
        help="engine.cudnn_benchmark: time cuDNN's algorithms per shape, or take its heuristic's",
    )


def engine_settings(args: argparse.Namespace, **fields: Any) -> EngineSettings:
    """The engine settings a benchmark runs with: each ``--knob`` turns on the setting of its
    name (``xformers``: ``attention``), with ``--dtype`` and ``--cudnn-benchmark``; ``fields``
    are the rest (models, device, batch limit, cache directory, ...)."""
    knobs = set(args.knob)
    settings = EngineSettings(
        dtype=args.dtype,
        attention="xformers" if "xformers" in knobs else "sdpa",
        channels_last="channels_last" in knobs,
        fuse_qkv="fuse_qkv" in knobs,
        compile="compile" in knobs,
        aot_compile="aot_compile" in knobs,
        cuda_graphs="cuda_graphs" in knobs,
        vae_slicing="vae_slicing" in knobs,
        cpu_offload="cpu_offload" in knobs,
        cudnn_benchmark=args.cudnn_benchmark == "true",
    )
    return dataclasses.replace(settings, **fields)


def model_dir(args: argparse.Namespace) -> Path:
    """``--model``, or a random ``--arch`` pipeline written once into the temp dir."""
    if args.model:
        return Path(args.model)
    out = Path(tempfile.gettempdir()) / f"streamgen-bench-{args.arch}"
    if not (out / "model_index.json").exists():
        import torch

        from streamgen.engine.model_init import write_model

        cuda = args.device != "cpu" and torch.cuda.is_available()
        write_model(
            args.arch,
            out,
            device="cuda" if cuda else "cpu",
            dtype=torch.float16 if cuda else torch.float32,
        )
    return out


def requests(
    n: int, args: argparse.Namespace, *, tag: str = "", steps: int | None = None
) -> Iterator[GenerationRequest]:
    for i in range(n):
        yield GenerationRequest(
            request_id=f"bench{tag}-{i:06d}",
            prompt=f"Professional product photography, item {i}, white background",
            negative_prompt="blurry, low quality",
            model=MODEL,
            width=args.size,
            height=args.size,
            steps=steps or args.steps,
            guidance_scale=args.guidance,
            seed=1000 + i,
            created_at=datetime.now(UTC),
        )


T = TypeVar("T")


def on_engine_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a thread of its own, as the worker's GPU thread runs the engine.

    On a CPU the thread matters: on the loaded 2-core test machine a tiny-model ``generate`` on
    the main thread took ~10x as long as the same call on another thread (torch's intra-op
    threads contend differently), so engine-alone figures taken on the main thread would flatter
    the worker.
    """
    box: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="bench-engine")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]
