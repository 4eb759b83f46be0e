"""The kernel grouping of ``benchmarks.families --profile``: names seen on Hopper GPUs and on a
CPU, and what a profiled call's kernels add up to."""

from __future__ import annotations

import pytest

from benchmarks.runner_profile import GROUPS, group_of, kernel_report


@pytest.mark.parametrize(
    ("kernel", "group"),
    [
        ("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4>>", "attention"),
        ("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", "attention"),
        ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3", "attention"),
        ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
        ("nvjet_tst_192x192_64x4_2x1_v_bz_coopB_TNT", "gemm"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_cgasize1x2x1", "gemm"),
        (
            "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_128x2>",
            "gemm",
        ),
        ("triton_tem_fused_addmm_gelu_7", "gemm"),
        ("triton_tem_fused_mm_0", "gemm"),
        ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", "gemm"),
        ("aten::addmm", "gemm"),
        ("aten::mm", "gemm"),
        ("aten::mkldnn_convolution", "gemm"),
        # Inductor's fused point-wise kernels carry the names of the ops around them.
        ("triton_poi_fused_addmm_gelu_3", "other"),
        ("triton_poi_fused__scaled_dot_product_flash_attention_transpose_2", "other"),
        ("triton_red_fused_native_layer_norm_0", "other"),
        ("triton_per_fused__fused_rms_norm_mul_5", "other"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add>", "other"),
        ("Memcpy DtoD (Device -> Device)", "other"),
        ("aten::native_layer_norm", "other"),
        ("aten::upsample_nearest2d", "other"),
    ],
)
def test_group_of_kernels_and_operators(kernel: str, group: str) -> None:
    assert group_of(kernel) == group


def test_report_splits_kernel_time_ranks_kernels_and_counts_the_gaps() -> None:
    kernels = {
        "nvjet_tst_192x192": (4, 2.0),
        "flash_fwd_kernel": (2, 1.0),
        "triton_poi_fused_add_0": (8, 0.5),
        "triton_red_fused_native_layer_norm_1": (8, 0.5),
    }
    report = kernel_report(kernels, wall_s=5.0, top=2)
    assert report["kernel_s"] == pytest.approx(4.0)
    assert report["gaps_s"] == pytest.approx(1.0) and report["gap_share"] == pytest.approx(0.2)
    assert set(report["groups"]) == set(GROUPS)
    assert report["groups"]["gemm"] == {"s": 2.0, "share": 0.5}
    assert report["groups"]["attention"]["share"] == pytest.approx(0.25)
    assert report["groups"]["other"]["s"] == pytest.approx(1.0)
    assert report["top_kernels"] == [
        {"kernel": "nvjet_tst_192x192", "group": "gemm", "count": 4, "s": 2.0, "share": 0.5},
        {"kernel": "flash_fwd_kernel", "group": "attention", "count": 2, "s": 1.0, "share": 0.25},
    ]


def test_kernels_overlapping_beyond_the_wall_time_leave_no_negative_gap() -> None:
    report = kernel_report({"aten::addmm": (1, 3.0)}, wall_s=2.0)
    assert report["gaps_s"] == 0.0 and report["gap_share"] == 0.0


def test_nothing_profiled_has_zero_shares() -> None:
    report = kernel_report({}, wall_s=0.0)
    assert report["kernel_s"] == 0.0 and report["top_kernels"] == []
    assert all(g["share"] == 0.0 for g in report["groups"].values())
