"""``engine.fp8_linear`` on CUDA (FP8 tensor cores: Ada, Hopper), on the tiny FLUX.1 [dev]: images
stay close to bf16's, batched still equals alone, and the path composes with torch.compile and
CUDA graphs.

Self-contained (run with ``--noconftest`` on machines without the Kafka stack's packages).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.drift import pixel_drift
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.fp8 import Fp8Linear
from streamgen.engine.knobs import FP8_CAPABILITY
from streamgen.engine.model_init import write_model
from streamgen.settings import EngineSettings
from tests.gpu.tiny_flux import flux_pixels, flux_requests

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or torch.cuda.get_device_capability() < FP8_CAPABILITY,
        reason="needs CUDA with FP8 tensor cores (compute capability 8.9+)",
    ),
]

# The tiny model on the CPU's _scaled_mm drifted to 49.4 dB (max 9 levels, mean 0.53) from
# bf16 over 28 steps; fast accumulation on the GPU adds a little. Unrelated images of this
# model are under 15 dB, so 30 dB still tells a small drift from a broken product.
MIN_PSNR_DB = 30.0
# Batched against alone: per-row scales make the FP8 numbers of a row its own, so what differs
# is what differs in bf16 (tests/gpu/test_flux_gpu.py's bounds): kernels per batch size.
MAX_LEVELS = 8
MAX_MEAN_LEVELS = 0.5


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny-flux-dev", tmp_path_factory.mktemp("tiny-flux-dev"))


def _fp8_layers(engine: DiffusionEngine) -> int:
    return sum(isinstance(m, Fp8Linear) for m in engine.parts("flux").denoiser.modules())


@pytest.mark.parametrize(
    "knobs",
    [{}, {"compile": True, "cuda_graphs": True}],
    ids=["eager", "compile+graphs"],
)
def test_fp8_images_stay_close_to_bf16(flux_dir: Path, knobs: dict[str, bool]) -> None:
    models = {"flux": str(flux_dir)}
    bf16 = flux_pixels(DiffusionEngine(EngineSettings(models=models)), flux_requests())
    engine = DiffusionEngine(
        EngineSettings(models=models, fp8_linear=True, max_batch_size=4, **knobs)
    )
    fp8 = flux_pixels(engine, flux_requests())
    # 1 double-stream and 1 single-stream block: 14 + 6 linears, every one of them 16-aligned.
    assert _fp8_layers(engine) == 20
    drift = pixel_drift(fp8, bf16)
    assert drift["psnr_db"] >= MIN_PSNR_DB, drift
    assert drift["max_pixel_diff"] > 0, "FP8 products gave bf16's images: not applied?"
    if knobs.get("cuda_graphs"):
        assert engine.graph_count() > 0


def test_batched_equals_alone_with_fp8(flux_dir: Path) -> None:
    engine = DiffusionEngine(EngineSettings(models={"flux": str(flux_dir)}, fp8_linear=True))
    requests = flux_requests()
    batched = flux_pixels(engine, requests)
    alone = [flux_pixels(engine, [r])[0] for r in requests]
    for x, y in zip(batched, alone, strict=True):
        diff = np.abs(x - y)
        assert diff.max() <= MAX_LEVELS and diff.mean() <= MAX_MEAN_LEVELS
