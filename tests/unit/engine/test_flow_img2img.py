"""img2img on the flow-matching families (tiny random FLUX.1 [dev], [schnell] and SD3.5
pipelines, CPU, float32): an image equals stock diffusers' ``FluxImg2ImgPipeline`` /
``StableDiffusion3Img2ImgPipeline`` for the same weights, init image, strength, prompt and seed;
batched equals alone with img2img rows of several strengths beside txt2img rows; and the start
step is the stock pipelines' for every step count and strength."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.img2img import flow_start_step
from streamgen.settings import EngineSettings, StoreSettings
from streamgen.store.init_images import InitImageReader
from tests.support.memory_store import MemoryStore
from tests.unit.engine.conftest import (
    MAX_LEVELS,
    assert_batched_equals_alone,
    pixels,
    request,
    stock_pipeline,
    stock_pixels,
)

STORE = "s3://images/in"
# The tiny T5 tokenizers hold 32 tokens (the published pipelines' 512 and 256).
STOCK_T5_TOKENS = 32


def _png(size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(sum(size))
    array = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


OBJECTS = {
    f"{STORE}/cat.png": _png((64, 64)),
    f"{STORE}/big.png": _png((100, 80)),  # resized to the request's size, as stock does
}


def _engine(model: str) -> DiffusionEngine:
    reader = InitImageReader.from_settings(StoreSettings(url=STORE), MemoryStore(OBJECTS))
    return DiffusionEngine(EngineSettings(models={"m": model}), reader)


@pytest.fixture(scope="module")
def dev(tiny_flux_dir: Path) -> DiffusionEngine:
    return _engine(str(tiny_flux_dir))


@pytest.fixture(scope="module")
def schnell(tiny_flux_schnell_dir: Path) -> DiffusionEngine:
    return _engine(str(tiny_flux_schnell_dir))


@pytest.fixture(scope="module")
def sd3(tiny_sd3_large_dir: Path) -> DiffusionEngine:
    return _engine(str(tiny_sd3_large_dir))


def img(request_id: str, image: str = "cat.png", **fields: Any) -> GenerationRequest:
    init = {"model": "m", "task": "img2img", "init_image_uri": f"{STORE}/{image}"}
    return request(request_id, **{**init, **fields})


def stock_image(pipeline_class: str, directory: Path, request: GenerationRequest) -> np.ndarray:
    """What diffusers' own img2img pipeline makes of ``request``, as 8-bit pixels."""
    init = Image.open(io.BytesIO(OBJECTS[request.init_image_uri or ""])).convert("RGB")
    # FluxImg2ImgPipeline would take even "" as true CFG's negative prompt.
    negative = {"negative_prompt": request.negative_prompt} if request.negative_prompt else {}
    return stock_pixels(
        stock_pipeline(pipeline_class, directory),
        request,
        image=init,
        strength=request.strength,
        guidance_scale=request.guidance_scale,
        max_sequence_length=STOCK_T5_TOKENS,
        **negative,
    )


def assert_equals_stock(
    engine: DiffusionEngine, pipeline_class: str, directory: Path, request: GenerationRequest
) -> None:
    (outcome,) = engine.generate([request])
    (ours,) = pixels(outcome)
    theirs = stock_image(pipeline_class, directory, request)
    assert ours.shape == theirs.shape == (request.height, request.width, 3)
    assert np.abs(ours - theirs).max() <= MAX_LEVELS
    # Not the txt2img image of the same prompt and seed: the init image shaped it.
    txt2img = dataclasses.replace(request, task="txt2img", init_image_uri=None)
    (plain,) = pixels(engine.generate([txt2img])[0])
    assert np.abs(ours - plain).mean() > MAX_LEVELS


def test_dev_img2img_equals_stock(dev: DiffusionEngine, tiny_flux_dir: Path) -> None:
    request = img("d", seed=11, steps=28, strength=0.6, guidance_scale=4.0)
    assert_equals_stock(dev, "FluxImg2ImgPipeline", tiny_flux_dir, request)


def test_schnell_img2img_equals_stock(
    schnell: DiffusionEngine, tiny_flux_schnell_dir: Path
) -> None:
    # 4 steps at 0.6 start at step 1 (4 - 2.4, truncated); the 100x80 image is resized.
    request = img("s", "big.png", seed=5, steps=4, strength=0.6, guidance_scale=0.0)
    assert_equals_stock(schnell, "FluxImg2ImgPipeline", tiny_flux_schnell_dir, request)


def test_sd3_img2img_equals_stock(sd3: DiffusionEngine, tiny_sd3_large_dir: Path) -> None:
    request = img("l", seed=3, steps=6, strength=0.7, guidance_scale=4.5, negative_prompt="dull")
    assert_equals_stock(sd3, "StableDiffusion3Img2ImgPipeline", tiny_sd3_large_dir, request)


def _mix(steps: int, **fields: Any) -> list[GenerationRequest]:
    """img2img rows at two start steps (one request of two images) beside txt2img rows."""
    return [
        img("a", seed=1, steps=steps, strength=0.5, **fields),
        img("b", "big.png", seed=2, steps=steps, strength=0.5, num_images=2, **fields),
        img("c", seed=3, steps=steps, strength=0.9, **fields),
        img("t", seed=4, steps=steps, task="txt2img", init_image_uri=None, **fields),
    ]


def test_schnell_batched_equals_alone(schnell: DiffusionEngine) -> None:
    assert_batched_equals_alone(schnell, _mix(4, guidance_scale=0.0))


def test_dev_batched_equals_alone(dev: DiffusionEngine) -> None:
    assert_batched_equals_alone(dev, _mix(28, guidance_scale=3.5))


def test_sd3_batched_equals_alone(sd3: DiffusionEngine) -> None:
    assert_batched_equals_alone(sd3, _mix(5, guidance_scale=4.0))


@pytest.mark.parametrize(
    "pipeline_class", ["FluxImg2ImgPipeline", "StableDiffusion3Img2ImgPipeline"]
)
def test_start_step_is_the_stock_pipelines(pipeline_class: str) -> None:
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler

    get_timesteps = getattr(diffusers, pipeline_class).get_timesteps
    strengths = [0.01, 0.1, 0.25, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99, 1.0]
    for steps in range(1, 51):
        scheduler = FlowMatchEulerDiscreteScheduler()
        scheduler.set_timesteps(steps)
        for strength in strengths:
            _, run = get_timesteps(SimpleNamespace(scheduler=scheduler), steps, strength, "cpu")
            assert flow_start_step(steps, strength) == steps - run, (steps, strength)
            assert steps - flow_start_step(steps, strength) >= 1
