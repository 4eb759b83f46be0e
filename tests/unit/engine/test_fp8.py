"""``engine.fp8_linear`` on the CPU: the quantization arithmetic, the FP8 linear against
nn.Linear within the error FP8 implies, which layers are chosen, and the start-up refusals.

torch's CPU ``_scaled_mm`` takes the same rowwise arguments as CUDA's, so the real module runs
here too (the GPU test, tests/gpu/test_fp8_gpu.py, covers images, graphs and compile).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from streamgen.engine.families import FAMILIES
from streamgen.engine.families.flux_model import FLUX_ARCHS
from streamgen.engine.families.sd3_model import SD3_ARCHS
from streamgen.engine.fp8 import (
    E4M3_MAX,
    Fp8Linear,
    dequantize,
    fp8_layer_names,
    quantize_rows,
    swap_fp8_linears,
)
from streamgen.engine.knobs import check_fp8_families, check_knobs
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings

# e4m3 keeps 3 mantissa bits: rounding to nearest is off by at most half a step, 2^-4 of the
# value. Below 2^-6 (subnormals) the step is fixed, 2^-9: half of it, times the row's scale.
RELATIVE_STEP = 2.0**-4
SUBNORMAL_HALF_STEP = 2.0**-10
# A product of two such roundings: each relative error uniform within +-2^-4 has an RMS of
# 2^-4/sqrt(3); two independent ones sqrt(2) times that. Sums of many products keep it.
PRODUCT_RMS = 2**0.5 * RELATIVE_STEP / 3**0.5
# bf16 output: 8 bits of mantissa, relative RMS well under 2^-8.
BF16_RMS = 2.0**-8


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_round_trip_is_within_half_a_step_and_keeps_each_row_max() -> None:
    torch.manual_seed(0)
    # Rows from 1e-3 to 1e3 in magnitude: the scale is per row, so each keeps its precision.
    x = torch.randn(64, 96) * torch.logspace(-3, 3, 64)[:, None]
    q, scale = quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    back = dequantize(q, scale)
    bound = torch.maximum(x.abs() * RELATIVE_STEP, scale * SUBNORMAL_HALF_STEP)
    assert bool(((back - x).abs() <= bound * 1.0001).all())
    assert torch.allclose(q.float().abs().amax(dim=1), torch.full((64,), E4M3_MAX))


def test_a_row_of_zeros_stays_zero_and_finite() -> None:
    q, scale = quantize_rows(torch.zeros(2, 32))  # a padded CUDA-graph row
    assert bool(torch.isfinite(scale).all()) and not bool(dequantize(q, scale).any())


def test_a_row_does_not_depend_on_its_batch() -> None:
    torch.manual_seed(1)
    x = torch.randn(8, 64)
    alone, _ = quantize_rows(x[3:4] * 1)
    batched, _ = quantize_rows(torch.cat([x, x * 1000]))
    assert torch.equal(alone.float(), batched[3:4].float())


@pytest.mark.parametrize("features", [64, 512, 3072])
def test_fp8_linear_is_nn_linear_within_the_fp8_error(features: int) -> None:
    torch.manual_seed(features)
    linear = nn.Linear(features, 256).to(torch.bfloat16).requires_grad_(False)
    x = torch.randn(4, 16, features, dtype=torch.bfloat16)
    fp8 = Fp8Linear.from_linear(linear)
    assert fp8.weight.dtype == torch.float8_e4m3fn and fp8.weight_scale.shape == (1, 256)
    exact = nn.functional.linear(x.float(), linear.weight.float(), linear.bias.float())
    # The emulation: the same FP8 numbers multiplied in float32.
    qx, sx = quantize_rows(x.float())
    weight = dequantize(fp8.weight, fp8.weight_scale.t())
    emulated = dequantize(qx, sx) @ weight.t() + linear.bias.float()
    assert _relative(emulated, exact) <= PRODUCT_RMS
    out = fp8(x)
    assert out.shape == (4, 16, 256) and out.dtype == torch.bfloat16
    assert _relative(out, emulated) <= BF16_RMS


def _tiny_transformer(family: str) -> Any:
    diffusers: Any = importlib.import_module("diffusers")
    if family == "flux":
        return diffusers.FluxTransformer2DModel(**FLUX_ARCHS["tiny-flux-dev"].transformer)
    return diffusers.SD3Transformer2DModel(**SD3_ARCHS["tiny-sd3-medium"].transformer)


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_the_block_linears_are_chosen_and_the_rest_kept(family: str) -> None:
    transformer = _tiny_transformer(family)
    blocks = FAMILIES[family].fp8_blocks
    linears = {n for n, m in transformer.named_modules() if isinstance(m, nn.Linear)}
    chosen = set(fp8_layer_names(transformer, blocks))
    assert chosen == {n for n in linears if n.startswith(blocks)}
    kept = linears - chosen
    assert "proj_out" in kept and "norm_out.linear" in kept and "context_embedder" in kept
    assert all("embed" in n or n in {"proj_out", "norm_out.linear"} for n in kept)
    assert swap_fp8_linears(transformer, blocks) == len(chosen)
    for name, module in transformer.named_modules():
        assert isinstance(module, Fp8Linear) == (name in chosen)


def test_a_layer_scaled_mm_cannot_take_is_kept() -> None:
    model = nn.ModuleDict({"blocks": nn.ModuleList([nn.Linear(32, 48), nn.Linear(37, 32)])})
    assert fp8_layer_names(model, ("blocks.",)) == ["blocks.0"]
    assert fp8_layer_names(model, ()) == []


@pytest.mark.parametrize(
    ("arch", "cls", "family"),
    [
        (FLUX_ARCHS["flux-dev"], "FluxTransformer2DModel", "flux"),
        (SD3_ARCHS["sd3.5-large"], "SD3Transformer2DModel", "sd3"),
    ],
    ids=["flux-dev", "sd3.5-large"],
)
def test_published_sizes_match_torchaos_flux_recipe(arch: Any, cls: str, family: str) -> None:
    """torchao's FLUX.1 [dev] evaluation quantizes every linear but names holding "embed",
    norm_out.linear, proj_out and layers under 1024 wide: the same layers as the blocks rule."""
    diffusers: Any = importlib.import_module("diffusers")
    with torch.device("meta"):
        transformer = getattr(diffusers, cls)(**arch.transformer)
    torchao = {
        n
        for n, m in transformer.named_modules()
        if isinstance(m, nn.Linear)
        and "embed" not in n
        and n not in {"norm_out.linear", "proj_out"}
        and min(m.weight.shape) >= 1024
    }
    assert set(fp8_layer_names(transformer, FAMILIES[family].fp8_blocks)) == torchao


def test_a_swapped_tiny_flux_stays_close_to_bf16() -> None:
    torch.manual_seed(0)
    transformer = _tiny_transformer("flux").to(torch.bfloat16)
    inputs = {
        "hidden_states": torch.randn(2, 64, 64, dtype=torch.bfloat16),
        "encoder_hidden_states": torch.randn(2, 8, 32, dtype=torch.bfloat16),
        "pooled_projections": torch.randn(2, 32, dtype=torch.bfloat16),
        "timestep": torch.tensor([0.5, 0.5], dtype=torch.bfloat16),
        "guidance": torch.tensor([3.5, 3.5], dtype=torch.bfloat16),
        "img_ids": torch.zeros(64, 3, dtype=torch.bfloat16),
        "txt_ids": torch.zeros(8, 3, dtype=torch.bfloat16),
        "return_dict": False,
    }
    with torch.no_grad():
        reference = transformer(**inputs)[0]
        swap_fp8_linears(transformer, FAMILIES["flux"].fp8_blocks)
        fp8 = transformer(**inputs)[0]
    # Two blocks of FP8 products: a few times one product's error, far from a different output.
    assert _relative(fp8, reference) <= 4 * PRODUCT_RMS


def test_fp8_is_refused_without_cuda() -> None:
    with pytest.raises(ConfigError, match=r"engine\.fp8_linear.*CUDA"):
        check_knobs(EngineSettings(fp8_linear=True), torch.device("cpu"))


def test_fp8_is_refused_for_a_unet_family_before_its_weights_load(tiny_dir: Path) -> None:
    with pytest.raises(ConfigError, match="model tiny is sd15") as raised:
        check_fp8_families({"tiny": str(tiny_dir)})
    assert raised.value.setting == "engine.fp8_linear"


def test_only_the_transformer_families_offer_fp8() -> None:
    offered = {name for name, family in FAMILIES.items() if family.fp8_blocks}
    assert offered == {"flux", "flux2", "sd3"}
