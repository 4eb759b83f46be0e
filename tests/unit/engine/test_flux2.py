"""The flux2 family on a tiny random FLUX.2 [klein] pipeline (CPU, float32): an image equals
stock diffusers' ``Flux2KleinPipeline`` for the same weights, prompt and seed; batched equals
alone with mixed prompts, seeds and sizes; and the family's rules refuse what [klein] cannot
honour, naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from streamgen.cli.model import model
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.graphs import BucketGraphs, eager_noise
from streamgen.engine.model_init import write_model
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

# The tiny tokenizer holds 96 tokens, chat template included (the published one 512).
TOKENS = 96


@pytest.fixture(scope="module")
def klein_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flux2") / "klein"
    result = CliRunner().invoke(model, ["write", "--family", "flux2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def klein(klein_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"klein": str(klein_dir)}))


def klein_request(request_id: str, **fields: Any) -> GenerationRequest:
    return request(request_id, **{"model": "klein", "steps": 4, "guidance_scale": 0.0, **fields})


def stock_image(directory: Path, request: GenerationRequest) -> np.ndarray:
    """What diffusers' own Flux2KleinPipeline makes of ``request``, as 8-bit pixels."""
    pipeline = stock_pipeline("Flux2KleinPipeline", directory)
    return stock_pixels(pipeline, request, max_sequence_length=TOKENS)


@pytest.mark.parametrize(("width", "height"), [(64, 64), (96, 48)])
def test_klein_equals_stock_flux2_klein_pipeline(
    klein: DiffusionEngine, klein_dir: Path, width: int, height: int
) -> None:
    request = klein_request("a", seed=11, width=width, height=height)
    (outcome,) = klein.generate([request])
    (ours,) = pixels(outcome)
    theirs = stock_image(klein_dir, request)
    assert ours.shape == theirs.shape == (height, width, 3)
    assert np.abs(ours - theirs).max() <= MAX_LEVELS
    assert (outcome.family, outcome.dtype) == ("flux2 [klein]", "float32")


def test_mixed_prompts_seeds_and_sizes_batched_equal_alone(klein: DiffusionEngine) -> None:
    outcomes = assert_batched_equals_alone(
        klein,
        [
            klein_request("a", seed=1),
            klein_request("b", seed=2, prompt="a long prompt " * 20, num_images=2),
            klein_request("c", seed=3, width=32, height=48),
            klein_request("d", seed=4, guidance_scale=7.5),  # the schema's default: no effect
        ],
    )
    assert max(o.batch_size for o in outcomes) == 4  # a, b (two images) and d share one
    assert outcomes[2].images[0].size == (32, 48)


def test_seed_and_prompt_change_the_image(klein: DiffusionEngine) -> None:
    a, b, c = klein.generate(
        [klein_request("a"), klein_request("b", seed=2), klein_request("c", prompt="other")]
    )
    base = pixels(a)[0]
    assert np.abs(base - pixels(b)[0]).max() > MAX_LEVELS
    assert np.abs(base - pixels(c)[0]).max() > MAX_LEVELS


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"negative_prompt": "blurry"}, "negative_prompt"),
        ({"guidance_scale": 3.5}, "guidance_scale"),
        ({"width": 72}, "width"),
        ({"height": 40}, "height"),
        ({"steps": 3}, "steps"),
        ({"steps": 8}, "steps"),
        ({"scheduler": "dpmpp_2m"}, "scheduler"),
        ({"task": "img2img", "init_image_uri": "s3://bucket/in.png"}, "task"),
    ],
)
def test_klein_refuses_what_it_cannot_honour(
    klein: DiffusionEngine, fields: dict[str, Any], field: str
) -> None:
    (outcome,) = klein.generate([klein_request("x", **fields)])
    assert outcome.error is not None and outcome.error.code == "INVALID_REQUEST"
    assert not outcome.error.retryable
    assert str(outcome.error).startswith(f"{field}=")


def test_a_request_without_a_scheduler_gets_flow_matching_euler(klein: DiffusionEngine) -> None:
    assert klein.shape_of(klein_request("a")).scheduler == "euler"


@pytest.mark.parametrize("rows", [1, 3])
def test_padded_denoiser_equals_the_plain_one(klein: DiffusionEngine, rows: int) -> None:
    """The CUDA-graph path's padding on the CPU, without a capture: what tests/gpu captures."""
    parts = klein.parts("klein")
    cond = parts.family.encode(
        parts, [f"p{i}" for i in range(rows)], [""] * rows, width=64, height=64, device=klein.device
    )
    channels, height, width = parts.family.latent_shape(parts, 64, 64)
    latents = torch.randn(rows, channels, height, width, generator=torch.Generator().manual_seed(1))
    guidance = torch.zeros(rows)
    t = torch.tensor(700.0)
    graphs = BucketGraphs(parts, klein.device, capture=False)
    with torch.no_grad():
        padded = graphs.noise_predictor((1, 2, 4))(latents, t, cond, guidance)
        plain = eager_noise(parts)(latents, t, cond, guidance)
    torch.testing.assert_close(padded, plain, atol=1e-4, rtol=0)


def test_the_writer_is_deterministic_and_brings_its_tokenizer(
    klein_dir: Path, tmp_path: Path
) -> None:
    again = write_model("tiny-flux2-klein", tmp_path / "again")
    for part in ("transformer", "vae", "text_encoder"):
        ours = next((klein_dir / part).glob("*.safetensors")).read_bytes()
        assert next((again / part).glob("*.safetensors")).read_bytes() == ours
    index = json.loads((klein_dir / "model_index.json").read_text())
    assert index["_class_name"] == "Flux2KleinPipeline" and index["is_distilled"] is True
    assert (klein_dir / "tokenizer" / "tokenizer_config.json").is_file()


def test_klein_base_is_refused_at_load_naming_the_setting(klein_dir: Path, tmp_path: Path) -> None:
    import shutil

    base = tmp_path / "base"
    shutil.copytree(klein_dir, base)
    index = json.loads((base / "model_index.json").read_text())
    (base / "model_index.json").write_text(json.dumps({**index, "is_distilled": False}))
    with pytest.raises(ConfigError, match=r"engine\.models.*is_distilled=false"):
        DiffusionEngine(EngineSettings(models={"base": str(base)}))
