"""LoRA adapters on CUDA (fp16): a batch mixing adapters equals each request alone, and a batch
with adapters under CUDA graphs runs eagerly (counted) and gives the eager engine's image,
while batches without adapters keep replaying their graphs.

Not run on the CPU-only machines the branch was written on: no figures come from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamgen.contracts.request import Adapter, GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.model_init import write_model
from streamgen.settings import EngineSettings, StoreSettings
from streamgen.store.init_images import InitImageReader
from tests.support.lora import attention_layers, lora_bytes
from tests.support.memory_store import MemoryStore

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

STORE = "s3://adapters/lora"
# fp16, as tests/gpu/test_engine_gpu.py: other kernels for other batch sizes round differently.
MAX_LEVELS = 6


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny", tmp_path_factory.mktemp("tiny"))


def engine_with_adapters(directory: Path, **knobs: bool) -> DiffusionEngine:
    store = MemoryStore({})
    files = InitImageReader.from_settings(StoreSettings(url=STORE), store, max_bytes=1 << 24)
    settings = EngineSettings(models={"tiny": str(directory)}, device="cuda", **knobs)  # type: ignore[arg-type]
    engine = DiffusionEngine(settings, adapter_files=files)
    unet = engine.parts("tiny").denoiser
    layers = attention_layers(unet)
    store.objects[f"{STORE}/a.safetensors"] = lora_bytes(unet, layers, seed=1)
    store.objects[f"{STORE}/b.safetensors"] = lora_bytes(unet, layers[::2], seed=2, rank=2)
    return engine


def asked(request_id: str, seed: int, *adapters: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        prompt=f"a picture of {request_id}",
        model="tiny",
        width=64,
        height=64,
        steps=4,
        seed=seed,
        scheduler="euler",
        adapters=tuple(Adapter(f"{STORE}/{name}.safetensors") for name in adapters),
    )


def images(engine: DiffusionEngine, requests: list[GenerationRequest]) -> list[np.ndarray]:
    outcomes = engine.generate(requests)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return [np.asarray(o.images[0], dtype=np.int16) for o in outcomes]


MIX = [asked("a", 1, "a"), asked("b", 2, "b"), asked("none", 3), asked("ab", 4, "a", "b")]


def test_a_batch_mixing_adapters_equals_each_request_alone(tiny_dir: Path) -> None:
    engine = engine_with_adapters(tiny_dir)
    batched = images(engine, MIX)
    for image, request in zip(batched, MIX, strict=True):
        assert np.abs(image - images(engine, [request])[0]).max() <= MAX_LEVELS


def test_adapters_under_cuda_graphs_run_eagerly_and_give_the_eager_image(tiny_dir: Path) -> None:
    graphs = engine_with_adapters(tiny_dir, cuda_graphs=True)
    graphs.warm_up([graphs.shape_of(MIX[0])])
    eager = engine_with_adapters(tiny_dir)
    for ours, theirs in zip(images(graphs, MIX), images(eager, MIX), strict=True):
        assert np.abs(ours - theirs).max() <= MAX_LEVELS
    assert graphs.adapter_stats().eager_batches == 1
    images(graphs, [asked("plain", 5)])  # no adapters: the graphs, not counted
    assert graphs.adapter_stats().eager_batches == 1
    assert graphs.graph_count() > 0
