"""Where a batch's GPU time goes, by kind of kernel, and what each attention backend gets.

``python -m benchmarks.kernel_split --knob aot_compile --batch-size 32 --json OUT``:

1. warms the engine up as ``bench-engine`` does, then runs one ``generate`` of the batch under
   ``torch.profiler`` and sums every CUDA kernel's time into a kind (``KINDS``: convolution,
   matrix product, attention, normalisation, fused element-wise, copies, other), with the
   kernels that took the most and the share of the wall time the GPU was idle;
2. times ``scaled_dot_product_attention`` alone at the attention shapes the UNet runs (every
   resolution's self-attention, and the cross-attention on the 77 text tokens, at the batch's
   2B rows of classifier-free guidance, shapes read from the UNet's config), once per backend:
   the first call's time (cuDNN compiles its kernel then) and the steady TFLOP/s.

Pure arithmetic (``kind_of``, ``KernelSplit``) is separate from the GPU run and unit-tested.
Not a test: it prints a table and writes JSON (docs/benchmarks.md, "Where the time goes").
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "KernelSplit", "kernel_times", "kind_of", "main"]

# First match wins, so attention comes before the matrix products its kernels also contain.
_PATTERNS = (
    ("attention", r"fmha|flash|attention|sdpa|_attn|softmax"),
    ("convolution", r"conv|fprop|dgrad|wgrad|implicit_gemm|winograd|cudnn"),
    ("matrix product", r"gemm|nvjet|cutlass|cublas|_mm_|addmm|bmm|matmul|xmma"),
    ("normalisation", r"norm|welford"),
    ("fused element-wise", r"^triton_|elementwise|vectorized|unrolled|reduce_kernel"),
    ("copies and layout", r"copy|memcpy|memset|transpose|nchw|nhwc|cat_|fill"),
)
KINDS = (*(kind for kind, _ in _PATTERNS), "other")
_COMPILED = tuple((kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in _PATTERNS)


def kind_of(kernel: str) -> str:
    """The kind of a CUDA kernel, from its (demangled) name."""
    for kind, pattern in _COMPILED:
        if pattern.search(kernel):
            return kind
    return "other"


@dataclass
class KernelSplit:
    """Kernel time summed by kind; ``wall_s`` is the profiled call's wall time."""

    wall_s: float
    kernel_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    by_kernel: dict[str, float] = field(default_factory=dict)

    def add(self, kernel: str, seconds: float) -> None:
        self.kernel_s[kind_of(kernel)] += seconds
        self.by_kernel[kernel] = self.by_kernel.get(kernel, 0.0) + seconds

    @property
    def busy_s(self) -> float:
        return sum(self.kernel_s.values())

    def shares(self) -> dict[str, float]:
        """Each kind's share of the kernel time (0 when nothing ran)."""
        busy = self.busy_s
        return {k: (s / busy if busy else 0.0) for k, s in self.kernel_s.items()}

    def top(self, n: int) -> list[tuple[str, float]]:
        return sorted(self.by_kernel.items(), key=lambda kv: kv[1], reverse=True)[:n]

    def report(self, top: int = 15) -> dict[str, object]:
        busy = self.busy_s
        return {
            "wall_s": self.wall_s,
            "kernel_s": busy,
            # Kernels can overlap on several streams; on one stream this is the idle share.
            "gpu_idle_share": max(0.0, 1.0 - busy / self.wall_s) if self.wall_s else 0.0,
            "by_kind_s": self.kernel_s,
            "by_kind_share": self.shares(),
            "top_kernels": [
                {"kernel": k[:160], "kind": kind_of(k), "s": s, "share": s / busy if busy else 0}
                for k, s in self.top(top)
            ],
        }


@dataclass(frozen=True)
class AttentionShape:
    """One ``scaled_dot_product_attention`` call of the UNet: rows, heads, query and key
    tokens, head dimension."""

    label: str
    rows: int
    heads: int
    queries: int
    keys: int
    head_dim: int

    @property
    def flop(self) -> float:
        return 4.0 * self.rows * self.heads * self.queries * self.keys * self.head_dim


def unet_attention_shapes(
    batch: int, latent: int, unet: Mapping[str, Any], text_tokens: int = 77
) -> list[AttentionShape]:
    """Self- and cross-attention at every resolution whose down block has attention, for
    ``batch`` images under CFG, from the UNet's config: ``block_out_channels``,
    ``down_block_types`` and the heads per block (diffusers' ``num_attention_heads``, or its
    older name ``attention_head_dim``; one number or one per block). The latent grid halves
    at each block."""
    channels = unet["block_out_channels"]
    heads = unet.get("num_attention_heads") or unet["attention_head_dim"]
    per_block = list(heads) if isinstance(heads, Sequence) else [heads] * len(channels)
    shapes = []
    side = latent
    for width, kind, count in zip(channels, unet["down_block_types"], per_block, strict=True):
        if "CrossAttn" in kind:
            tokens, dim, rows = side * side, width // count, 2 * batch
            where = f"{side}x{side} d{dim}"
            shapes.append(AttentionShape(f"self {where}", rows, count, tokens, tokens, dim))
            shapes.append(AttentionShape(f"cross {where}", rows, count, tokens, text_tokens, dim))
        side //= 2
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.engine import KNOBS
    from benchmarks.models import add_engine_arguments

    p = argparse.ArgumentParser(prog="bench-kernel-split", description=__doc__)
    add_engine_arguments(p, arch="sd15", size=512, steps=30)
    p.add_argument("--knob", action="append", default=[], choices=KNOBS)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--compile-cache-dir", default="")
    p.add_argument("--attention-repeats", type=int, default=20)
    p.add_argument(
        "--attention-batches",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[3, 32],
        help="images per batch for the attention timings (default: 3,32)",
    )
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    report: dict[str, object] = {"date": datetime.now(UTC).isoformat(timespec="seconds")}
    profiled, unet = _profile_generate(args)
    report.update(profiled)
    if _cuda():
        report["attention"] = _time_attention(args, unet)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


def _profile_generate(args: argparse.Namespace) -> tuple[dict[str, object], dict[str, Any]]:
    """The kernel split of one ``generate``, and the UNet's config."""
    import time

    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.models import MODEL, engine_settings, model_dir, requests
    from streamgen.engine.engine import DiffusionEngine

    settings = engine_settings(
        args,
        models={MODEL: str(model_dir(args))},
        compile_cache_dir=args.compile_cache_dir,
        max_batch_size=args.batch_size,
    )
    engine = DiffusionEngine(settings)
    batch = list(requests(args.batch_size, args))
    engine.warm_up([engine.shape_of(batch[0])])
    engine.generate(batch)  # once more untimed: every kernel of the timed call has run before
    sync: Callable[[], None] = torch.cuda.synchronize if _cuda() else (lambda: None)
    sync()
    with profile(activities=[ProfilerActivity.CUDA if _cuda() else ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        engine.generate(batch)
        sync()
        wall = time.perf_counter() - start
    split = KernelSplit(wall_s=wall)
    for name, seconds in kernel_times(prof.events(), cuda=_cuda()):
        split.add(name, seconds)
    knobs = "+".join(sorted(args.knob)) or "default"
    out: dict[str, object] = {
        "device": torch.cuda.get_device_name() if _cuda() else "cpu",
        "versions": {"torch": torch.__version__},
        "settings": {
            "knobs": knobs,
            "arch": args.arch,
            "size": args.size,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "cudnn_benchmark": args.cudnn_benchmark,
        },
        "generate": split.report(),
    }
    return out, dict(engine.parts(MODEL).denoiser.config)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def kernel_times(events: Iterable[object], *, cuda: bool) -> Iterable[tuple[str, float]]:
    """(kernel name, seconds) of every CUDA kernel the profiler saw; on a CPU (a smoke run of
    this script) every operator's own CPU time instead."""
    for event in events:
        if getattr(event, "is_user_annotation", False):
            continue
        on_device = str(getattr(event, "device_type", "")).endswith("CUDA")
        if cuda and on_device:
            us = getattr(event, "self_device_time_total", 0.0)
        elif not cuda and not on_device:
            us = getattr(event, "self_cpu_time_total", 0.0)
        else:
            continue
        yield str(getattr(event, "name", "?")), float(us) / 1e6


def _time_attention(args: argparse.Namespace, unet: Mapping[str, Any]) -> list[dict[str, object]]:
    """Each backend at each attention shape: its first call (for cuDNN, compiling its kernel
    for a shape this process has not run) and its steady time. A batch the engine did not run
    (3, by default) shows the first-call cost a new batch bucket pays."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention

    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }
    latent = args.size // 8
    rows = []
    for batch in args.attention_batches:
        for shape in unet_attention_shapes(batch, latent, unet):
            q, k = (
                torch.randn(shape.rows, shape.heads, n, shape.head_dim, device="cuda").half()
                for n in (shape.queries, shape.keys)
            )
            row: dict[str, object] = {"batch": batch, **asdict(shape), "tflop": shape.flop / 1e12}
            for name, backend in backends.items():
                try:
                    with sdpa_kernel([backend]):
                        call = partial(scaled_dot_product_attention, q, k, k)
                        first, steady = _cuda_time(call, args.attention_repeats)
                    row[f"{name}_first_call_ms"] = first * 1e3
                    row[f"{name}_ms"] = steady * 1e3
                    row[f"{name}_tflops"] = shape.flop / steady / 1e12
                except RuntimeError as exc:  # a backend that does not take this shape
                    row[f"{name}_error"] = str(exc).splitlines()[0][:200]
            rows.append(row)
    return rows


def _cuda_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Seconds of the first call (synchronised), and per call over ``repeats`` after it."""
    import time

    import torch

    torch.cuda.synchronize()
    start_s = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - start_s
    for _ in range(2):
        fn()
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return first, float(start.elapsed_time(end)) / 1e3 / repeats


if __name__ == "__main__":
    raise SystemExit(main())
