"""Where one generation call's time goes: attention kernels, matrix products, everything else,
and the gaps between kernels (``benchmarks.families --profile``).

``profile_call`` runs the call once under ``torch.profiler`` (CUDA kernels on a GPU; on a CPU,
a smoke run, every operator's own CPU time) and ``kernel_report`` sums kernel time by group
(``GROUPS``) with the kernels that took the most. Wall time minus kernel time is what the
device waited for the host (launches, Python, synchronisation): CUDA graphs exist to shrink it.
The grouping is pure and unit-tested (tests/unit/benchmarks/test_runner_profile.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["GROUPS", "group_of", "kernel_report", "profile_call"]

# attention: FlashAttention, memory-efficient (fmha/cutlassF), cuDNN's SDPA and FA3-class
# kernels; on a CPU, aten's scaled_dot_product_attention operators.
_ATTENTION = re.compile(r"flash|fmha|sdpa|attention|_attn", re.IGNORECASE)
# matrix products: cuBLAS(Lt) (gemm, nvjet, sm90_xmma, cutlass), Inductor's GEMM templates
# (triton_tem_*), and convolutions (implicit GEMMs on tensor cores: fprop, cuDNN's convolve);
# on a CPU, aten's mm/addmm/bmm/convolution operators.
_GEMM = re.compile(
    r"gemm|cutlass|nvjet|cublas|xmma|sm\d{2,3}_|^triton_tem_|matmul|addmm|bmm|(^|[:_])mm($|_)"
    r"|convol|conv2d|fprop|dgrad|wgrad",
    re.IGNORECASE,
)
# Inductor's generated pointwise, reduction and persistent-reduction kernels fuse whatever ops
# surround a product or an attention, and are named after them (triton_poi_fused_addmm_gelu_0):
# they are element-wise work whatever their name says.
_FUSED = re.compile(r"^triton_(poi|red|per)_")
GROUPS = ("attention", "gemm", "other")


def group_of(kernel: str) -> str:
    """``attention``, ``gemm`` or ``other`` (element-wise, norms, copies, Inductor's fused
    point-wise kernels), from a kernel's or operator's name."""
    if _FUSED.search(kernel):
        return "other"
    if _ATTENTION.search(kernel):
        return "attention"
    if _GEMM.search(kernel):
        return "gemm"
    return "other"


def kernel_report(
    kernels: Mapping[str, tuple[int, float]], wall_s: float, top: int = 15
) -> dict[str, Any]:
    """What a profiled call's kernels (name -> (launches, seconds)) add up to: total kernel
    time, its split by group, the ``top`` kernels by time with their launches and share, and
    the gaps (wall time the device ran no kernel; 0 if kernels overlapped on several streams
    by more than the gaps)."""
    busy = sum(seconds for _, seconds in kernels.values())
    by_group = dict.fromkeys(GROUPS, 0.0)
    for name, (_, seconds) in kernels.items():
        by_group[group_of(name)] += seconds
    ranked = sorted(kernels.items(), key=lambda item: item[1][1], reverse=True)[:top]
    return {
        "wall_s": wall_s,
        "kernel_s": busy,
        "gaps_s": max(0.0, wall_s - busy),
        "gap_share": max(0.0, 1.0 - busy / wall_s) if wall_s else 0.0,
        "groups": {
            group: {"s": seconds, "share": seconds / busy if busy else 0.0}
            for group, seconds in by_group.items()
        },
        "top_kernels": [
            {
                "kernel": name[:160],
                "group": group_of(name),
                "count": count,
                "s": seconds,
                "share": seconds / busy if busy else 0.0,
            }
            for name, (count, seconds) in ranked
        ],
    }


def profile_call(call: Callable[[], object], top: int = 15) -> dict[str, Any]:
    """Run ``call`` once under the profiler (its shapes already warm) and report its kernels:
    CUDA kernels' device time on a GPU, operators' own CPU time on a CPU."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.kernel_split import kernel_times

    cuda = torch.cuda.is_available()
    sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
    activity = ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU
    sync()
    with profile(activities=[activity]) as prof:
        start = time.perf_counter()
        call()
        sync()
        wall = time.perf_counter() - start
    kernels: dict[str, tuple[int, float]] = {}
    for name, seconds in kernel_times(prof.events(), cuda=cuda):
        count, total = kernels.get(name, (0, 0.0))
        kernels[name] = (count + 1, total + seconds)
    report = kernel_report(kernels, wall, top)
    report["activity"] = "cuda kernels" if cuda else "cpu operators (self time)"
    return report
