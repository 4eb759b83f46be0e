"""Per-request LoRA adapters over the tiny transformer families (FLUX.1 [schnell], SD3.5 Large):
an adapter gives stock diffusers' image with it loaded by ``load_lora_weights``, and a batch
mixing adapters gives every request the image it gets alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamgen.contracts.request import Adapter, GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.settings import EngineSettings, StoreSettings
from streamgen.store.init_images import InitImageReader
from tests.support.lora import attention_layers, lora_bytes
from tests.support.memory_store import MemoryStore
from tests.unit.engine.conftest import (
    MAX_LEVELS,
    assert_batched_equals_alone,
    assert_same_images,
    pixels,
    request,
    stock_pipeline,
    stock_pixels,
)

STORE = "s3://adapters/lora"
# The tiny T5 tokenizers hold 32 tokens.
T5_TOKENS = 32
FAMILIES = {
    # fixture, stock pipeline, request fields, stock call arguments
    "flux": (
        "tiny_flux_schnell_dir",
        "FluxPipeline",
        {"steps": 4, "guidance_scale": 0.0},
        {"guidance_scale": 0.0, "max_sequence_length": T5_TOKENS},
    ),
    "sd3": (
        "tiny_sd3_large_dir",
        "StableDiffusion3Pipeline",
        {"steps": 4, "guidance_scale": 4.5},
        {"guidance_scale": 4.5, "max_sequence_length": T5_TOKENS},
    ),
}


def adapter_engine(
    directory: Path, model: str, store: MemoryStore | None = None, **knobs: Any
) -> tuple[DiffusionEngine, MemoryStore]:
    """An engine reading adapters from ``store`` (a new one holding a.safetensors and
    b.safetensors for ``model`` when None)."""
    files_there = store is not None
    store = store or MemoryStore({})
    files = InitImageReader.from_settings(StoreSettings(url=STORE), store, max_bytes=1 << 24)
    settings = EngineSettings(models={model: str(directory)}, **knobs)
    engine = DiffusionEngine(settings, adapter_files=files)
    if files_there:
        return engine, store
    denoiser = engine.parts(model).denoiser
    layers = attention_layers(denoiser)
    assert layers, "no attention projections found: the adapters would change nothing"
    store.objects.update(
        {
            f"{STORE}/a.safetensors": lora_bytes(denoiser, layers, seed=1, prefix="transformer."),
            f"{STORE}/b.safetensors": lora_bytes(
                denoiser, layers[::3], seed=2, rank=2, prefix="transformer."
            ),
        }
    )
    return engine, store


def adapted(
    model: str, request_id: str, *adapters: tuple[str, float], **fields: Any
) -> GenerationRequest:
    refs = tuple(Adapter(f"{STORE}/{name}", scale) for name, scale in adapters)
    return request(request_id, model=model, adapters=refs, **{**FAMILIES[model][2], **fields})


@pytest.mark.parametrize("model", list(FAMILIES))
def test_an_adapter_gives_stock_diffusers_image_with_load_lora_weights(
    model: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture, pipeline_class, _, call = FAMILIES[model]
    directory = request.getfixturevalue(fixture)
    engine, store = adapter_engine(directory, model)
    asked = adapted(model, "r", ("a.safetensors", 0.7), seed=5)
    (ours,) = pixels(engine.generate([asked])[0])
    pipe = stock_pipeline(pipeline_class, directory)
    plain = stock_pixels(pipe, asked, **call)
    path = tmp_path / "a.safetensors"
    path.write_bytes(store.objects[f"{STORE}/a.safetensors"])
    pipe.load_lora_weights(str(path), adapter_name="a")
    pipe.set_adapters(["a"], adapter_weights=[0.7])
    stock = stock_pixels(pipe, asked, **call)
    assert np.abs(ours - stock).max() <= MAX_LEVELS
    assert np.abs(ours - plain).max() > 8  # the adapter changed the image


@pytest.mark.parametrize("model", list(FAMILIES))
def test_a_batch_mixing_adapters_equals_each_request_alone(
    model: str, request: pytest.FixtureRequest
) -> None:
    engine, _ = adapter_engine(request.getfixturevalue(FAMILIES[model][0]), model)
    mix = [
        adapted(model, "a", ("a.safetensors", 1.0), seed=1),
        adapted(model, "none", seed=2),
        adapted(model, "ab", ("a.safetensors", 0.5), ("b.safetensors", -1.0), seed=3),
        adapted(model, "b", ("b.safetensors", 1.5), seed=4, num_images=2),
    ]
    outcomes = assert_batched_equals_alone(engine, mix)
    assert max(o.batch_size for o in outcomes) == 5
    same = {"seed": 1, "prompt": "a picture of a"}  # request a's, without a's adapter
    (plain,) = engine.generate([adapted(model, "x", **same)])
    assert np.abs(pixels(outcomes[0])[0] - pixels(plain)[0]).max() > 8


@pytest.mark.parametrize("model", list(FAMILIES))
def test_adapters_on_fused_qkv_projections_give_the_unfused_images(
    model: str, request: pytest.FixtureRequest
) -> None:
    # FLUX: diffusers' to_qkv and to_added_qkv; SD3: streamgen's own fused joint attention.
    directory = request.getfixturevalue(FAMILIES[model][0])
    plain, store = adapter_engine(directory, model)
    fused, _ = adapter_engine(directory, model, store, fuse_qkv=True)
    names = [name for name, _ in fused.parts(model).denoiser.named_modules()]
    assert any(n.endswith(".to_added_qkv") for n in names)
    assert not any(n.endswith((".to_k", ".add_k_proj")) for n in names)
    mix = [
        adapted(model, "a", ("a.safetensors", 1.0), seed=1),
        adapted(model, "ab", ("a.safetensors", 0.5), ("b.safetensors", -1.0), seed=2),
        adapted(model, "none", seed=3),
    ]
    for ours, theirs in zip(fused.generate(mix), plain.generate(mix), strict=True):
        assert_same_images(ours, theirs)
