"""The flux family on tiny random FLUX.1 pipelines (CPU, float32): an image equals stock
diffusers' ``FluxPipeline`` for the same weights, prompt and seed; batched equals alone with
mixed prompts, seeds, guidance and sizes; and the family's rules refuse what it cannot honour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.graphs import BucketGraphs, eager_noise
from streamgen.engine.types import Shape
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings
from tests.unit.engine.conftest import (
    MAX_LEVELS,
    assert_batched_equals_alone,
    pixels,
    request,
    stock_pipeline,
    stock_pixels,
)

# [dev] is refused below 28 steps, as it is trained for 28-50.
DEV_STEPS = 28


@pytest.fixture(scope="module")
def dev(tiny_flux_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"flux": str(tiny_flux_dir)}))


@pytest.fixture(scope="module")
def schnell(tiny_flux_schnell_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"flux": str(tiny_flux_schnell_dir)}))


def flux_request(request_id: str, **fields: Any) -> GenerationRequest:
    return request(
        request_id, **{"model": "flux", "steps": DEV_STEPS, "guidance_scale": 3.5, **fields}
    )


def stock_image(directory: Path, request: GenerationRequest, **extra: Any) -> np.ndarray:
    """What diffusers' own FluxPipeline makes of ``request``, as 8-bit pixels."""
    return stock_pixels(stock_pipeline("FluxPipeline", directory), request, **extra)


def test_dev_equals_stock_flux_pipeline(dev: DiffusionEngine, tiny_flux_dir: Path) -> None:
    request = flux_request("a", seed=11, guidance_scale=4.0, width=96)
    (outcome,) = dev.generate([request])
    (ours,) = pixels(outcome)
    # The tiny T5 tokenizer holds 32 tokens (the published one 512).
    theirs = stock_image(tiny_flux_dir, request, guidance_scale=4.0, max_sequence_length=32)
    assert ours.shape == theirs.shape == (64, 96, 3)
    assert np.abs(ours - theirs).max() <= MAX_LEVELS
    assert (outcome.family, outcome.dtype) == ("flux [dev]", "float32")


def test_schnell_equals_stock_flux_pipeline(
    schnell: DiffusionEngine, tiny_flux_schnell_dir: Path
) -> None:
    request = flux_request("s", seed=5, steps=4, guidance_scale=0.0)
    (outcome,) = schnell.generate([request])
    (ours,) = pixels(outcome)
    theirs = stock_image(tiny_flux_schnell_dir, request, guidance_scale=0.0, max_sequence_length=32)
    assert np.abs(ours - theirs).max() <= MAX_LEVELS
    assert outcome.family == "flux [schnell]"


def test_mixed_prompts_seeds_guidance_and_sizes_batched_equal_alone(dev: DiffusionEngine) -> None:
    outcomes = assert_batched_equals_alone(
        dev,
        [
            flux_request("a", seed=1),
            flux_request("b", seed=2, guidance_scale=1.5, num_images=2),
            flux_request("c", seed=3, width=32, height=48),
            flux_request("d", seed=4, guidance_scale=7.0),
        ],
    )
    assert max(o.batch_size for o in outcomes) == 4  # a, b (two images) and d share one
    assert outcomes[2].images[0].size == (32, 48)


def test_seed_and_guidance_change_the_image(dev: DiffusionEngine) -> None:
    a, b, c = dev.generate(
        [flux_request("a"), flux_request("b", seed=2), flux_request("c", guidance_scale=9.0)]
    )
    base = pixels(a)[0]
    assert np.abs(base - pixels(b)[0]).max() > MAX_LEVELS
    assert np.abs(base - pixels(c)[0]).max() > MAX_LEVELS


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"negative_prompt": "blurry"}, "negative_prompt"),
        ({"width": 72}, "width"),
        ({"height": 40}, "height"),
        ({"steps": 20}, "steps"),
        ({"steps": 51}, "steps"),
        ({"scheduler": "dpmpp_2m"}, "scheduler"),
    ],
)
def test_dev_refuses_what_it_cannot_honour(
    dev: DiffusionEngine, fields: dict[str, Any], field: str
) -> None:
    (outcome,) = dev.generate([flux_request("x", **fields)])
    assert outcome.error is not None and outcome.error.code == "INVALID_REQUEST"
    assert not outcome.error.retryable
    assert str(outcome.error).startswith(f"{field}=")


def test_schnell_has_no_guidance_and_at_most_four_steps(schnell: DiffusionEngine) -> None:
    guided, long, default = schnell.generate(
        [
            flux_request("g", steps=4, guidance_scale=3.5),
            flux_request("l", steps=8, guidance_scale=0.0),
            flux_request("d", steps=4, guidance_scale=7.5),  # the schema's default: accepted
        ]
    )
    assert guided.error is not None and str(guided.error).startswith("guidance_scale=")
    assert long.error is not None and str(long.error).startswith("steps=")
    assert default.ok, default.error


def test_a_request_without_a_scheduler_gets_flow_matching_euler(dev: DiffusionEngine) -> None:
    # The fleet's default (dpmpp_2m) is a DDPM solver; FLUX has only flow-matching Euler.
    assert dev.shape_of(flux_request("a")).scheduler == "euler"


@pytest.mark.parametrize("rows", [1, 3])
def test_padded_denoiser_equals_the_plain_one(dev: DiffusionEngine, rows: int) -> None:
    """The CUDA-graph path's padding on the CPU, without a capture (one row per image, no
    negative half): what tests/gpu captures."""
    parts = dev.parts("flux")
    cond = parts.family.encode(
        parts, [f"p{i}" for i in range(rows)], [""] * rows, width=64, height=64, device=dev.device
    )
    latents = torch.randn(rows, 16, 8, 8, generator=torch.Generator().manual_seed(rows))
    guidance = torch.linspace(1.0, 5.0, rows)
    t = torch.tensor(700.0)
    graphs = BucketGraphs(parts, dev.device, capture=False)
    with torch.no_grad():
        padded = graphs.noise_predictor((1, 2, 4))(latents, t, cond, guidance)
        plain = eager_noise(parts)(latents, t, cond, guidance)
    torch.testing.assert_close(padded, plain, atol=1e-4, rtol=0)


def test_warm_up_runs_flux_shapes_with_its_own_scheduler(dev: DiffusionEngine) -> None:
    # engine.warmup_shapes fills in the fleet's default scheduler (dpmpp_2m), as for requests.
    took = dev.warm_up([Shape("flux", "txt2img", 64, 64, DEV_STEPS, "dpmpp_2m")])
    assert [s.scheduler for s in took] == ["euler"]
    with pytest.raises(ConfigError, match=r"engine\.warmup_shapes.*multiples of 16"):
        dev.warm_up([Shape("flux", "txt2img", 72, 64, DEV_STEPS, "euler")])
