import json
from pathlib import Path

import pytest
import torch

from benchmarks.kernel_split import KINDS, KernelSplit, kind_of, unet_attention_shapes


@pytest.mark.parametrize(
    ("kernel", "kind"),
    [
        ("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>", "attention"),
        ("fmha_cutlassF_f16_aligned_64x64_rf_sm80", "attention"),
        ("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc", "convolution"),
        ("cudnn::engines_precompiled::nchwToNhwcKernel<__half>", "convolution"),
        ("nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_NTT", "matrix product"),
        ("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64", "matrix product"),
        ("triton_red_fused_native_group_norm_0", "normalisation"),
        ("triton_poi_fused_add_silu_3", "fused element-wise"),
        (
            "void at::native::vectorized_elementwise_kernel<4, CUDAFunctor_add<c10::Half>>",
            "fused element-wise",
        ),
        ("Memcpy DtoD (Device -> Device)", "copies and layout"),
        ("some_kernel_nobody_knows", "other"),
    ],
)
def test_kind_of_names_the_kernels_seen_on_an_h200(kernel: str, kind: str) -> None:
    assert kind_of(kernel) == kind


def test_split_sums_by_kind_and_reports_idle_share() -> None:
    split = KernelSplit(wall_s=2.0)
    split.add("triton_poi_fused_add_0", 0.25)
    split.add("sm90_xmma_fprop_implicit_gemm", 1.0)
    split.add("sm90_xmma_fprop_implicit_gemm", 0.25)
    report = split.report(top=1)
    assert split.busy_s == pytest.approx(1.5)
    assert report["gpu_idle_share"] == pytest.approx(0.25)
    assert report["by_kind_share"]["convolution"] == pytest.approx(1.25 / 1.5)
    assert set(report["by_kind_s"]) == set(KINDS)
    assert report["top_kernels"] == [
        {
            "kernel": "sm90_xmma_fprop_implicit_gemm",
            "kind": "convolution",
            "s": 1.25,
            "share": pytest.approx(1.25 / 1.5),
        }
    ]


def test_empty_split_has_zero_shares() -> None:
    assert set(KernelSplit(wall_s=0.0).shares().values()) == {0.0}
    assert KernelSplit(wall_s=0.0).report()["gpu_idle_share"] == 0.0


SD15_UNET = {
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "attention_head_dim": 8,
}
SDXL_UNET = {
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "attention_head_dim": (5, 10, 20),
    "num_attention_heads": None,
}


def test_sd15_attention_shapes_at_512px_batch_32() -> None:
    shapes = unet_attention_shapes(32, 64, SD15_UNET)
    assert [s.label for s in shapes] == [
        "self 64x64 d40",
        "cross 64x64 d40",
        "self 32x32 d80",
        "cross 32x32 d80",
        "self 16x16 d160",
        "cross 16x16 d160",
    ]
    first = shapes[0]
    assert (first.rows, first.heads, first.queries, first.keys) == (64, 8, 4096, 4096)
    assert first.flop == 4.0 * 64 * 8 * 4096 * 4096 * 40
    assert shapes[1].keys == 77


def test_sdxl_attention_shapes_skip_the_block_without_attention() -> None:
    shapes = unet_attention_shapes(8, 128, SDXL_UNET)
    assert [(s.label, s.heads) for s in shapes] == [
        ("self 64x64 d64", 10),
        ("cross 64x64 d64", 10),
        ("self 32x32 d64", 20),
        ("cross 32x32 d64", 20),
    ]
    assert shapes[0].rows == 16


def test_shapes_from_the_config_of_a_written_model(tmp_path: Path) -> None:
    """The config diffusers writes (defaults filled in, ``num_attention_heads`` null)."""
    from streamgen.engine.model_init import write_model

    write_model("tiny", tmp_path / "tiny", device="cpu", dtype=torch.float32)
    unet = json.loads((tmp_path / "tiny" / "unet" / "config.json").read_text())
    assert [s.label for s in unet_attention_shapes(2, 8, unet)] == ["self 8x8 d4", "cross 8x8 d4"]
