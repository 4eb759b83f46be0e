"""``engine.fp8_linear``: the denoiser's large linear layers as FP8 matrix products (Hopper, Ada).

An opt-in speed path that CHANGES IMAGES (slightly): every other knob changes only speed.

The recipe is torchao's ``Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())``,
without depending on torchao (its wheels follow torch's nightly ABI, not the device's torch):

- weights quantized once, at load, to ``float8_e4m3fn`` with one scale per output channel;
- activations quantized at every call, one scale per token (row), so a row's numbers never
  depend on the other rows of its batch: batched still equals alone, padded CUDA-graph rows
  change nothing, and no scale is ever read back to the host (graphs and compile need that);
- one ``torch._scaled_mm`` (rowwise scales, bf16 out, bias in its epilogue, fast accumulation
  as torchao's inference default).

Which layers: those inside the family's repeated blocks (``ModelFamily.fp8_blocks``), whose two
dimensions ``_scaled_mm`` can take (multiples of 16). Outside the blocks stay in bf16 the
embedders (patch, text, timestep, guidance), the final norm's modulation and the final
projection: exactly what torchao's FLUX.1 [dev] evaluation
(benchmarks/quantization/eval_accuracy_and_perf_of_flux.py) leaves out by name. Its other rule,
no layer narrower than 1024, selects nothing more at the published sizes (every block layer is
1536 wide or more: tests/unit/engine/test_fp8.py checks FLUX.1 and SD3.5 Large).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = [
    "E4M3_MAX",
    "Fp8Linear",
    "dequantize",
    "fp8_layer_names",
    "quantize_rows",
    "swap_fp8_linears",
]

FP8 = torch.float8_e4m3fn
E4M3_MAX = float(torch.finfo(FP8).max)  # 448
# A row of zeros (a padded CUDA-graph row) would divide by zero: its scale floors here instead.
MIN_AMAX = 1e-12
# What torch._scaled_mm asks of both dimensions of the weight (cuBLASLt / CUTLASS alignment).
ALIGNMENT = 16


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (..., K) as float8_e4m3fn with one float32 scale per row (..., 1): each row's
    largest magnitude maps to 448, so ``q * scale`` gives ``x`` back to 3 mantissa bits."""
    amax = x.abs().amax(dim=-1, keepdim=True).to(torch.float32)
    scale = amax.clamp(min=MIN_AMAX) / E4M3_MAX
    q = (x.to(torch.float32) / scale).clamp(-E4M3_MAX, E4M3_MAX).to(FP8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 values ``q`` stands for (the inverse of :func:`quantize_rows`)."""
    return q.to(torch.float32) * scale


class Fp8Linear(nn.Module):
    """``y = x W^T + b`` with W in FP8 (per output channel) and x quantized per row per call."""

    weight: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        # Buffers, not parameters: nothing trains them, and the FP8 tensor is no nn.Parameter.
        self.register_buffer("weight", weight)  # (N, K), row-major: W^T is column-major
        self.register_buffer("weight_scale", weight_scale)  # (1, N) float32
        self.register_buffer("bias", bias)  # (N,) bf16, what _scaled_mm's epilogue adds

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear) -> Fp8Linear:
        q, scale = quantize_rows(linear.weight)
        bias = None if linear.bias is None else linear.bias.to(torch.bfloat16)
        return cls(q, scale.reshape(1, -1).contiguous(), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        q, scale = quantize_rows(rows)
        out = torch._scaled_mm(
            q,
            self.weight.t(),
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=self.bias,
            out_dtype=torch.bfloat16,
            use_fast_accum=True,
        )
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


def fp8_layer_names(module: nn.Module, blocks: Sequence[str]) -> list[str]:
    """Names of the ``nn.Linear`` layers of ``module`` that run in FP8: under one of the
    ``blocks`` prefixes, with both dimensions multiples of 16."""
    return [name for name, _ in _eligible(module, tuple(blocks))]


def swap_fp8_linears(module: nn.Module, blocks: Sequence[str]) -> int:
    """Replace the layers :func:`fp8_layer_names` names with :class:`Fp8Linear`, in place,
    on the device they are on. Returns how many were replaced."""
    chosen = list(_eligible(module, tuple(blocks)))
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, Fp8Linear.from_linear(linear))
    return len(chosen)


def _eligible(module: nn.Module, blocks: tuple[str, ...]) -> Iterator[tuple[str, nn.Linear]]:
    if not blocks:
        return
    for name, child in module.named_modules():
        if (
            type(child) is nn.Linear  # not a subclass with other semantics (LoRA, quantized)
            and name.startswith(blocks)
            and child.in_features % ALIGNMENT == 0
            and child.out_features % ALIGNMENT == 0
        ):
            yield name, child
