"""benchmarks/adapters.py on the CPU: full size is refused with a reason, bad options are named
before a model loads, and --tiny runs every part end to end through the engine (figures not
asserted: a loaded CPU's seconds mean nothing; their arithmetic and bookkeeping are)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from benchmarks.adapters import main

ROOT = Path(__file__).resolve().parents[3]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's refusal and check")


@no_cuda
def test_full_size_is_refused_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--family", "sdxl"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


@no_cuda
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine")
def test_the_gpu_wrapper_says_there_is_no_gpu() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts/bench-adapters-gpu"), "60", "sdxl"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no GPU" in done.stderr and "nothing was measured" in done.stderr


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--parts", "batch,speed"], "--parts"),
        (["--batch", "0"], "--batch"),
        (["--zipf-requests", "12"], "--zipf-requests"),  # not a multiple of the batch of 8
        (["--cache-adapters", "4", "--parts", "batch"], "--cache-adapters"),  # fewer than 8
        (["--zipf-adapters", "20"], "--cache-adapters"),  # the tiny budget holds 23: all of them
        (["--knobs", "compile,warp_speed"], "warp_speed"),
    ],
)
def test_a_bad_option_is_named(
    options: list[str], named: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    assert main(["--family", "sdxl", "--tiny", *options, "--json", str(out)]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


@no_cuda  # on CUDA: tests/gpu/test_adapters_bench_gpu.py
@pytest.mark.slow
def test_tiny_run_measures_every_part_through_the_engine(tmp_path: Path) -> None:
    out, store = tmp_path / "report.json", tmp_path / "store"
    options = ["--steps", "2", "--repeats", "1", "--first-use", "2", "--zipf-requests", "16"]
    assert main(["--family", "sdxl", "--tiny", *options, "--store", f"file://{store}",
                 "--json", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert report["figures"] == "functional check (tiny)"
    settings, parts = report["settings"], report["parts"]
    assert list(parts) == ["batch", "first-use", "zipf"]

    batch = parts["batch"]
    assert set(batch["runs"]) == {"none", "one", "different"}
    rate = {}
    for name, row in batch["runs"].items():
        assert row["each_s"] == [row["seconds"]]  # one round: its median
        rate[name] = row["images_per_s"]
        assert rate[name] == pytest.approx(8 / row["seconds"])
    ratio = batch["ratios"]["different_vs_one"]
    assert ratio == pytest.approx(rate["different"] / rate["one"])
    assert batch["goal"]["met"] is (ratio >= 0.8)
    assert batch["eager_batches"] == 0  # no fast path configured: nothing to do without

    first = parts["first-use"]
    for each in first["each"]:
        assert each["total_s"] == pytest.approx(each["fetch_s"] + each["parse_s"] + each["copy_s"])
        assert 0 < each["total_s"] <= each["wall_s"]
    # The loader's own count of a loaded adapter is what the benchmark computed from the model.
    assert first["memory"]["cache_bytes_per_adapter"] == settings["adapter_device_bytes"]
    assert first["memory"]["cuda_allocated_per_adapter"] is None  # no CUDA: no such figure

    zipf = parts["zipf"]
    assert zipf["loads"] + zipf["hits"] == zipf["requests"] == 16
    assert zipf["loads"] >= zipf["distinct_adapters"] > 1
    assert zipf["hit_rate"] <= zipf["hit_rate_unbounded_cache"]
    assert set(zipf["vs_batch"]) == {"none", "one", "different"}
    written = sorted(p.name for p in (store / "adapters/tiny-sdxl/r32-float32").iterdir())
    assert len(written) == 8 + 2 + zipf["distinct_adapters"] == settings["adapter_files_written"]
    assert written[0] == "batch-0.safetensors" and written[-1].startswith("zipf-")
