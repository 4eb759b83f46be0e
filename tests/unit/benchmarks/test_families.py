"""benchmarks/families.py on the CPU: full size is refused with a reason, --tiny runs the same
code (stock diffusers and streamgen on the tiny FLUX.1 [schnell], each profiled) and writes its
JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks.families import main

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's refusal and smoke")


def test_full_size_is_refused_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--family", "flux-dev"]) == 2
    assert "--tiny" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_smoke_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = ["--family", "flux-schnell", "--tiny", "--batch-sizes", "1,2", "--repeats", "1"]
    args.append("--profile")
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["runners"]) == {"diffusers", "streamgen"}
    assert report["max_pixel_diff_vs_stock"] <= 1
    assert report["tflop_per_image"] > 0
    for row in report["runners"].values():
        assert [b["batch_size"] for b in row["batches"]] == [1, 2]
        assert all(b["images_per_s"] > 0 and b["tflops"] > 0 for b in row["batches"])
        profile = row["profile"]  # on a CPU: operators' own time, in the GPU's report shape
        groups = profile["groups"]
        assert set(groups) == {"attention", "gemm", "other"}
        assert sum(g["s"] for g in groups.values()) == pytest.approx(profile["kernel_s"])
        assert groups["attention"]["s"] > 0 and groups["gemm"]["s"] > 0
        assert 0 < len(profile["top_kernels"]) <= 15 and profile["gaps_s"] >= 0
