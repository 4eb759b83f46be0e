"""fp16 on CUDA: batched equals alone, and speed knobs change nothing but speed.

Self-contained (run with ``--noconftest`` on machines without the Kafka stack's packages).
Set ``STREAMGEN_GPU_SD15=DIR`` to also check the full-size SD 1.5 architecture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.model_init import write_model
from streamgen.engine.schedulers import SCHEDULERS
from streamgen.settings import EngineSettings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

# fp16: a batch may pick other cuDNN/cuBLAS kernels than a single image, whose rounding
# differs; a few levels out of 255 at most, and almost every pixel identical.
MAX_LEVELS = 6
MAX_MEAN_LEVELS = 0.5


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny", tmp_path_factory.mktemp("tiny"))


def _mix(size: int, steps: int, scheduler: str) -> list[GenerationRequest]:
    base = GenerationRequest(
        request_id="x",
        prompt="",
        model="m",
        width=size,
        height=size,
        steps=steps,
        scheduler=scheduler,
    )
    return [
        base.replace(request_id="a", prompt="a red fox", seed=1),
        base.replace(
            request_id="b",
            prompt="a city at night",
            negative_prompt="blur",
            seed=7,
            guidance_scale=3.0,
            num_images=2,
        ),
        base.replace(request_id="c", prompt="an old map", guidance_scale=11.0),
    ]


def _diffs(engine: DiffusionEngine, requests: Sequence[GenerationRequest]) -> tuple[int, float]:
    batched = engine.generate(requests)
    worst, mean = 0, 0.0
    for request, outcome in zip(requests, batched, strict=True):
        assert outcome.ok, outcome.error
        alone = engine.generate([request])[0]
        for a, b in zip(outcome.images, alone.images, strict=True):
            d = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
            worst, mean = max(worst, int(d.max())), max(mean, float(d.mean()))
    print(f"max {worst} levels, mean {mean:.3f}")
    return worst, mean


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_fp16_batched_equals_alone_tiny(tiny_dir: Path, scheduler: str) -> None:
    engine = DiffusionEngine(EngineSettings(models={"m": str(tiny_dir)}, device="cuda"))
    worst, mean = _diffs(engine, _mix(64, 6, scheduler))
    assert worst <= MAX_LEVELS and mean <= MAX_MEAN_LEVELS


@pytest.mark.parametrize("knob", ["channels_last", "fuse_qkv", "vae_slicing", "cpu_offload"])
def test_knob_changes_nothing_but_speed(tiny_dir: Path, knob: str) -> None:
    plain = DiffusionEngine(EngineSettings(models={"m": str(tiny_dir)}, device="cuda"))
    knobs: dict[str, Any] = {knob: True}
    tuned = DiffusionEngine(EngineSettings(models={"m": str(tiny_dir)}, device="cuda", **knobs))
    requests = _mix(64, 6, "dpmpp_2m")
    for a, b in zip(plain.generate(requests), tuned.generate(requests), strict=True):
        for x, y in zip(a.images, b.images, strict=True):
            assert np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() <= MAX_LEVELS


@pytest.mark.skipif("STREAMGEN_GPU_SD15" not in os.environ, reason="STREAMGEN_GPU_SD15 not set")
def test_fp16_batched_equals_alone_sd15() -> None:
    engine = DiffusionEngine(EngineSettings(models={"m": os.environ["STREAMGEN_GPU_SD15"]}))
    worst, mean = _diffs(engine, _mix(512, 10, "dpmpp_2m"))
    assert worst <= MAX_LEVELS and mean <= MAX_MEAN_LEVELS


# --- engine.cuda_graphs: every bucket, padded rows never reach a result --------------------

# The bound for batched vs alone under CUDA graphs (levels of 255).
GRAPH_MAX_LEVELS = 2


def _graph_engine(model_dir: str, max_batch: int, **knobs: Any) -> DiffusionEngine:
    return DiffusionEngine(
        EngineSettings(
            models={"m": model_dir},
            device="cuda",
            cuda_graphs=True,
            max_batch_size=max_batch,
            **knobs,
        )
    )


def _sized(size: int, steps: int, n: int) -> list[GenerationRequest]:
    """``n`` distinct requests: own prompt, seed and guidance each."""
    return [
        GenerationRequest(
            request_id=f"r{i}",
            prompt=f"a lighthouse number {i}",
            negative_prompt="blur" if i % 2 else "",
            model="m",
            width=size,
            height=size,
            steps=steps,
            seed=100 + i,
            guidance_scale=3.0 + i,
        )
        for i in range(n)
    ]


def _graph_diffs(
    model_dir: str, size: int, steps: int, max_batch: int, **knobs: Any
) -> dict[int, int]:
    """Worst level difference, batched vs alone, for a batch filling each bucket exactly and
    one needing padding (3 in the bucket of 4, ...)."""
    engine = _graph_engine(model_dir, max_batch, **knobs)
    requests = _sized(size, steps, max_batch)
    alone = [engine.generate([r])[0] for r in requests]
    worst: dict[int, int] = {}
    for n in range(1, max_batch + 1):
        batched = engine.generate(requests[:n])
        levels = 0
        for a, b in zip(batched, alone, strict=False):
            assert a.ok and b.ok, (a.error, b.error)
            assert a.batch_size == n  # the padded rows are nobody's result
            x, y = np.asarray(a.images[0], np.int16), np.asarray(b.images[0], np.int16)
            levels = max(levels, int(np.abs(x - y).max()))
        worst[n] = levels
    print(f"batched vs alone under CUDA graphs, worst levels per batch size: {worst}")
    return worst


def test_cuda_graphs_batched_equals_alone_every_bucket_tiny(tiny_dir: Path) -> None:
    # Max 6: buckets 1, 2, 4, 6; sizes 3 and 5 run padded.
    worst = _graph_diffs(str(tiny_dir), 64, 6, 6)
    assert max(worst.values()) <= GRAPH_MAX_LEVELS


def test_cuda_graphs_change_nothing_but_speed_tiny(tiny_dir: Path) -> None:
    plain = DiffusionEngine(EngineSettings(models={"m": str(tiny_dir)}, device="cuda"))
    graphed = _graph_engine(str(tiny_dir), 4)
    requests = _mix(64, 6, "dpmpp_2m")  # 4 images: bucket 4
    for a, b in zip(plain.generate(requests), graphed.generate(requests), strict=True):
        for x, y in zip(a.images, b.images, strict=True):
            assert np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() <= MAX_LEVELS
    assert graphed.graph_count() > 0


@pytest.mark.parametrize("scheduler", ["euler_a", "pndm"])
def test_cuda_graphs_ancestral_and_history_schedulers_tiny(tiny_dir: Path, scheduler: str) -> None:
    # euler_a draws per-row noise from each row's generator; pndm keeps raw model outputs.
    # The bound is the eager one for the same mix (batched vs alone picks other fp16 kernels,
    # and euler_a's added noise carries the difference on): 3 levels were seen on the H200.
    engine = _graph_engine(str(tiny_dir), 4)
    worst, mean = _diffs(engine, _mix(64, 6, scheduler))
    assert worst <= MAX_LEVELS and mean <= MAX_MEAN_LEVELS


@pytest.mark.skipif("STREAMGEN_GPU_SD15" not in os.environ, reason="STREAMGEN_GPU_SD15 not set")
def test_cuda_graphs_batched_equals_alone_every_bucket_sd15() -> None:
    worst = _graph_diffs(os.environ["STREAMGEN_GPU_SD15"], 512, 10, 8)
    assert max(worst.values()) <= GRAPH_MAX_LEVELS


# --- engine.aot_compile: one dynamic-batch package per latent shape ------------------------


@pytest.fixture(scope="module")
def aot_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Shared by the tests below: the first compiles, the others load what it wrote."""
    return os.environ.get("STREAMGEN_GPU_AOT_CACHE") or str(tmp_path_factory.mktemp("aot"))


def _aot_engine(model_dir: str, cache: str, max_batch: int = 0) -> DiffusionEngine:
    return DiffusionEngine(
        EngineSettings(
            models={"m": model_dir},
            device="cuda",
            aot_compile=True,
            compile_cache_dir=cache,
            max_batch_size=max_batch,
        )
    )


def test_aot_compile_changes_nothing_but_speed_tiny(tiny_dir: Path, aot_cache: str) -> None:
    plain = DiffusionEngine(EngineSettings(models={"m": str(tiny_dir)}, device="cuda"))
    compiled = _aot_engine(str(tiny_dir), aot_cache, 4)
    requests = _mix(64, 6, "dpmpp_2m")
    for a, b in zip(plain.generate(requests), compiled.generate(requests), strict=True):
        for x, y in zip(a.images, b.images, strict=True):
            assert np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() <= MAX_LEVELS
    assert sum(compiled.aot_packages().values()) == 2  # the UNet step and the VAE decoder


def test_aot_compile_batched_equals_alone_tiny(tiny_dir: Path, aot_cache: str) -> None:
    engine = _aot_engine(str(tiny_dir), aot_cache, 4)
    worst, mean = _diffs(engine, _mix(64, 6, "dpmpp_2m"))
    assert worst <= MAX_LEVELS and mean <= MAX_MEAN_LEVELS
    assert engine.aot_packages() == {"compiled": 0, "loaded": 2}  # the first test compiled


def test_aot_compile_under_cuda_graphs_every_bucket_tiny(tiny_dir: Path, aot_cache: str) -> None:
    """The packages captured per bucket (loaded run_single_threaded): batched == alone."""
    worst = _graph_diffs(str(tiny_dir), 64, 6, 6, aot_compile=True, compile_cache_dir=aot_cache)
    assert max(worst.values()) <= GRAPH_MAX_LEVELS


def test_aot_compile_under_cuda_graphs_changes_nothing_but_speed_tiny(
    tiny_dir: Path, aot_cache: str
) -> None:
    plain = DiffusionEngine(EngineSettings(models={"m": str(tiny_dir)}, device="cuda"))
    graphed = _graph_engine(str(tiny_dir), 4, aot_compile=True, compile_cache_dir=aot_cache)
    requests = _mix(64, 6, "dpmpp_2m")
    for a, b in zip(plain.generate(requests), graphed.generate(requests), strict=True):
        for x, y in zip(a.images, b.images, strict=True):
            assert np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() <= MAX_LEVELS
    assert graphed.graph_count() > 0
    assert sum(graphed.aot_packages().values()) == 2


# --- the step callback (progress events) under CUDA graphs and AOT ------------------------


@pytest.mark.parametrize("aot", [False, True], ids=["graphs", "aot+graphs"])
def test_on_step_hears_every_replayed_step_tiny(tiny_dir: Path, aot_cache: str, aot: bool) -> None:
    """The step loop stays Python around the replayed graph (or AOT package): the worker's
    progress callback hears each step, in order, naming the batch's requests once each."""
    knobs: dict[str, Any] = {"aot_compile": True, "compile_cache_dir": aot_cache} if aot else {}
    engine = _graph_engine(str(tiny_dir), 4, **knobs)
    seen: list[tuple[list[str], int, int]] = []
    outcomes = engine.generate(
        _mix(64, 6, "dpmpp_2m"),  # 4 images: bucket 4
        on_step=lambda ids, step, steps: seen.append((list(ids), step, steps)),
    )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert seen == [(["a", "b", "c"], step, 6) for step in range(1, 7)]
    assert engine.graph_count() > 0
