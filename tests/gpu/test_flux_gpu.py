"""The flux family on CUDA (bf16, the tiny FLUX.1 [dev]): CUDA graphs, torch.compile and AOT
packages run the same denoiser call as eager and give the same images; batched equals alone.

Self-contained (run with ``--noconftest`` on machines without the Kafka stack's packages).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.model_init import write_model
from streamgen.settings import EngineSettings
from tests.gpu.tiny_flux import flux_pixels, flux_requests

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

# bf16: another batch size or a fused kernel rounds differently; a few levels out of 255.
MAX_LEVELS = 8
MAX_MEAN_LEVELS = 0.5


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny-flux-dev", tmp_path_factory.mktemp("tiny-flux-dev"))


def _close(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        diff = np.abs(x - y)
        assert diff.max() <= MAX_LEVELS and diff.mean() <= MAX_MEAN_LEVELS


def test_batched_equals_alone_in_bf16(flux_dir: Path) -> None:
    engine = DiffusionEngine(EngineSettings(models={"flux": str(flux_dir)}))
    requests = flux_requests()
    _close(flux_pixels(engine, requests), [flux_pixels(engine, [r])[0] for r in requests])


# The best knobs of docs/benchmarks.md's FLUX.1 [dev] runs, with issue 23's two levers: fused
# QKV projections and Inductor's tuning (engine.compile_mode).
TUNED: dict[str, Any] = {
    "compile": True,
    "cuda_graphs": True,
    "fuse_qkv": True,
    "compile_mode": "max-autotune",
}


@pytest.mark.parametrize(
    "knobs",
    [{"cuda_graphs": True}, {"compile": True, "cuda_graphs": True}, {"aot_compile": True}, TUNED],
    ids=["graphs", "compile+graphs", "aot", "fused+max-autotune+graphs"],
)
def test_speed_paths_wrap_the_same_denoiser_call(
    flux_dir: Path, tmp_path: Path, knobs: dict[str, Any]
) -> None:
    models = {"flux": str(flux_dir)}
    eager = flux_pixels(DiffusionEngine(EngineSettings(models=models)), flux_requests())
    cache = {"compile_cache_dir": str(tmp_path)} if knobs.get("aot_compile") else {}
    tuned = DiffusionEngine(EngineSettings(models=models, max_batch_size=4, **knobs, **cache))
    _close(flux_pixels(tuned, flux_requests()), eager)
    if knobs.get("cuda_graphs"):
        assert tuned.graph_count() > 0
    if knobs.get("aot_compile"):
        assert tuned.aot_packages()["compiled"] == 2
