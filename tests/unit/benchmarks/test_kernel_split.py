import pytest

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


def test_sd15_attention_shapes_at_512px_batch_32() -> None:
    shapes = unet_attention_shapes(32, 64, (320, 640, 1280), heads=8)
    assert [s.label for s in shapes] == [
        "self 64x64 d40",
        "cross 64x64 d40",
        "self 32x32 d80",
        "cross 32x32 d80",
        "self 16x16 d160",
        "cross 16x16 d160",
    ]
    first = shapes[0]
    assert (first.rows, first.queries, first.keys) == (64, 4096, 4096)
    assert first.flop == 4.0 * 64 * 8 * 4096 * 4096 * 40
    assert shapes[1].keys == 77
