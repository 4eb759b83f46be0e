"""benchmarks/adapters.py on CUDA, tiny SDXL (fp16): every part runs, torch's memory figures
are there and at least the cache's own count, and with CUDA graphs configured the timed
batches with adapters run eagerly (counted) while the batch without keeps its graphs.

Not run on the CPU-only machine the benchmark was written on: run it first in the next device
session (``python3 -m pytest -q --noconftest tests/gpu/test_adapters_bench_gpu.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks.adapters import main

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

SMALL = ["--family", "sdxl", "--tiny", "--steps", "2", "--repeats", "2", "--first-use", "2"]


def test_every_part_runs_on_cuda_with_torch_memory_figures(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = [*SMALL, "--zipf-requests", "16", "--store", f"file://{tmp_path}/store"]
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == torch.cuda.get_device_name()
    assert report["settings"]["adapter_dtype"] == "torch.float16"
    memory = report["parts"]["first-use"]["memory"]
    # The allocator rounds each tensor up to its blocks: never less than the tensors' bytes.
    assert memory["cuda_allocated_per_adapter"] >= memory["cache_bytes_per_adapter"] > 0
    assert memory["cache_bytes_per_adapter"] == report["settings"]["adapter_device_bytes"]
    zipf = report["parts"]["zipf"]
    assert zipf["loads"] + zipf["hits"] == zipf["requests"] == 16


def test_with_cuda_graphs_only_the_batches_with_adapters_run_eagerly(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = [*SMALL, "--parts", "batch", "--knobs", "cuda_graphs", "--store", f"file://{tmp_path}"]
    assert main([*args, "--json", str(out)]) == 0
    batch = json.loads(out.read_text())["parts"]["batch"]
    assert batch["eager_batches"] == 2 * 2  # "one" and "different", each of the 2 rounds
