"""The tiny random pipelines, written once per session, and engines over them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.model_init import tiny_arch, write_model
from streamgen.engine.types import GenerationOutcome
from streamgen.settings import EngineSettings

# A CPU gives identical results for one image alone and in a batch up to summation order;
# after rounding to 8 bits that is at most one level.
MAX_LEVELS = 1


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(2)
    return write_model("tiny", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny-sdxl", tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def engine(tiny_dir: Path) -> DiffusionEngine:
    """Shared by tests that do not modify it (others build their own)."""
    return DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}))


def request(request_id: str, **fields: object) -> GenerationRequest:
    base: dict[str, object] = {
        "prompt": f"a picture of {request_id}",
        "model": "tiny",
        "width": 64,
        "height": 64,
        "steps": 3,
        "seed": 1,
    }
    return GenerationRequest(request_id=request_id, **{**base, **fields})  # type: ignore[arg-type]


def stock_pipeline(class_name: str, directory: Path) -> Any:
    """diffusers' own pipeline ``class_name`` over the weights in ``directory``."""
    import diffusers

    return getattr(diffusers, class_name).from_pretrained(directory, local_files_only=True)


def stock_pixels(pipeline: Any, request: GenerationRequest, **call: Any) -> np.ndarray:
    """What a stock ``pipeline`` makes of ``request``'s prompt, size, steps and seed, as 8-bit
    pixels; ``call`` adds the pipeline's own arguments (guidance, sequence length, ...)."""
    out = pipeline(
        prompt=request.prompt,
        width=request.width,
        height=request.height,
        num_inference_steps=request.steps,
        generator=torch.Generator().manual_seed(request.seed or 0),
        output_type="np",
        **call,
    ).images[0]
    return (np.asarray(out) * 255).round().astype(np.int16)


def pixels(outcome: GenerationOutcome) -> list[np.ndarray]:
    assert outcome.ok, outcome.error
    return [np.asarray(image, dtype=np.int16) for image in outcome.images]


def assert_same_images(a: GenerationOutcome, b: GenerationOutcome) -> None:
    left, right = pixels(a), pixels(b)
    assert len(left) == len(right)
    for x, y in zip(left, right, strict=True):
        assert np.abs(x - y).max() <= MAX_LEVELS


def assert_batched_equals_alone(
    engine: DiffusionEngine, requests: Sequence[GenerationRequest]
) -> list[GenerationOutcome]:
    batched = engine.generate(requests)
    assert [o.request for o in batched] == list(requests)
    for outcome, alone_request in zip(batched, requests, strict=True):
        assert_same_images(outcome, engine.generate([alone_request])[0])
    return batched


@pytest.fixture(scope="session")
def tiny_flux_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny-flux-dev", tmp_path_factory.mktemp("tiny-flux-dev"))


@pytest.fixture(scope="session")
def tiny_flux_schnell_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny-flux-schnell", tmp_path_factory.mktemp("tiny-flux-schnell"))


@pytest.fixture(scope="session")
def tiny_sd3_large_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tiny_arch("sd3", "large"), tmp_path_factory.mktemp("tiny-sd3-large"))
