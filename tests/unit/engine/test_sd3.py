"""The sd3 family on tiny random SD3.5 pipelines (CPU, float32): an image equals stock diffusers'
``StableDiffusion3Pipeline`` for the same weights, prompt and seed (Large, Medium's dual-attention
layers, Large Turbo); batched equals alone with mixed prompts, negative prompts, seeds, guidance
and sizes; and the family's rules refuse what a variant cannot honour."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.families.sd3 import SD3
from streamgen.engine.graphs import BucketGraphs, eager_noise
from streamgen.engine.model_init import tiny_arch, write_model
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings
from streamgen.worker.startup import check_model_sources
from tests.unit.engine.conftest import (
    MAX_LEVELS,
    assert_batched_equals_alone,
    pixels,
    request,
    stock_pipeline,
    stock_pixels,
)

TURBO = "#large-turbo"
# The tiny T5 tokenizer holds 32 tokens (the published pipeline's default is 256).
STOCK_T5_TOKENS = 32


@pytest.fixture(scope="module")
def medium_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tiny_arch("sd3", "medium"), tmp_path_factory.mktemp("tiny-sd3-medium"))


@pytest.fixture(scope="module")
def large(tiny_sd3_large_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"sd3": str(tiny_sd3_large_dir)}))


@pytest.fixture(scope="module")
def medium(medium_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"sd3": str(medium_dir)}))


@pytest.fixture(scope="module")
def turbo(tiny_sd3_large_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"sd3": f"{tiny_sd3_large_dir}{TURBO}"}))


def sd3_request(request_id: str, **fields: Any) -> GenerationRequest:
    return request(request_id, **{"model": "sd3", "steps": 6, "guidance_scale": 4.5, **fields})


def stock_image(directory: Path, request: GenerationRequest) -> np.ndarray:
    """What diffusers' own StableDiffusion3Pipeline makes of ``request``, as 8-bit pixels."""
    return stock_pixels(
        stock_pipeline("StableDiffusion3Pipeline", directory),
        request,
        negative_prompt=request.negative_prompt or None,
        guidance_scale=request.guidance_scale,
        max_sequence_length=STOCK_T5_TOKENS,
    )


def assert_equals_stock(
    engine: DiffusionEngine, directory: Path, request: GenerationRequest
) -> str:
    (outcome,) = engine.generate([request])
    (ours,) = pixels(outcome)
    theirs = stock_image(directory, request)
    assert ours.shape == theirs.shape == (request.height, request.width, 3)
    assert np.abs(ours - theirs).max() <= MAX_LEVELS
    assert outcome.dtype == "float32"
    return outcome.family


def test_medium_with_dual_attention_equals_stock(medium: DiffusionEngine, medium_dir: Path) -> None:
    # MMDiT-X: the tiny Medium's first layer has the second self-attention SD3.5 Medium adds.
    transformer = medium.parts("sd3").denoiser
    assert transformer.config.dual_attention_layers == [0]
    assert transformer.transformer_blocks[0].attn2 is not None
    request = sd3_request("m", seed=11, width=96, negative_prompt="blurry, dark")
    assert assert_equals_stock(medium, medium_dir, request) == "sd3 [medium]"


def test_large_equals_stock(large: DiffusionEngine, tiny_sd3_large_dir: Path) -> None:
    request = sd3_request("l", seed=7, height=48, guidance_scale=7.0)
    assert assert_equals_stock(large, tiny_sd3_large_dir, request) == "sd3 [large]"


def test_a_scale_of_at_most_one_is_no_guidance_as_in_stock(
    large: DiffusionEngine, tiny_sd3_large_dir: Path
) -> None:
    # StableDiffusion3Pipeline runs no CFG at guidance_scale <= 1: the positive prediction alone,
    # not negative + 0.5 * (positive - negative).
    request = sd3_request("h", seed=3, guidance_scale=0.5, negative_prompt="noise")
    assert_equals_stock(large, tiny_sd3_large_dir, request)


def test_large_turbo_equals_stock(turbo: DiffusionEngine, tiny_sd3_large_dir: Path) -> None:
    request = sd3_request("t", seed=5, steps=4, guidance_scale=0.0)
    assert assert_equals_stock(turbo, tiny_sd3_large_dir, request) == "sd3 [large-turbo]"
    assert (
        turbo.parts("sd3")
        .family.encode(turbo.parts("sd3"), ["a"], [""], width=64, height=64, device=turbo.device)
        .copies
        == 1
    )  # one row per image: Turbo runs no negative half


def test_mixed_requests_batched_equal_alone(medium: DiffusionEngine) -> None:
    outcomes = assert_batched_equals_alone(
        medium,
        [
            sd3_request("a", seed=1),
            sd3_request("b", seed=2, guidance_scale=1.0, num_images=2),
            sd3_request("c", seed=3, width=32, height=48),
            sd3_request("d", seed=4, guidance_scale=7.0, negative_prompt="low quality"),
        ],
    )
    assert max(o.batch_size for o in outcomes) == 4  # a, b (two images) and d share one
    assert outcomes[2].images[0].size == (32, 48)


def test_turbo_batched_equals_alone(turbo: DiffusionEngine) -> None:
    assert_batched_equals_alone(
        turbo,
        [sd3_request(r, seed=i, steps=4, guidance_scale=0.0) for i, r in enumerate("xyz")],
    )


def test_seed_guidance_and_negative_prompt_change_the_image(large: DiffusionEngine) -> None:
    a, *others = large.generate(
        [
            sd3_request("a"),
            sd3_request("b", seed=2),
            sd3_request("c", guidance_scale=9.0),
            sd3_request("d", negative_prompt="red"),
        ]
    )
    base = pixels(a)[0]
    for other in others:
        assert np.abs(base - pixels(other)[0]).max() > MAX_LEVELS


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"width": 72}, "width"),
        ({"height": 40}, "height"),
        # The tiny transformer holds 32 patch positions a side: 32 x 2 x 8 pixels.
        ({"width": 528}, "width"),
        ({"scheduler": "dpmpp_2m"}, "scheduler"),
    ],
)
def test_refuses_what_it_cannot_honour(
    large: DiffusionEngine, fields: dict[str, Any], field: str
) -> None:
    (outcome,) = large.generate([sd3_request("x", **fields)])
    assert outcome.error is not None and outcome.error.code == "INVALID_REQUEST"
    assert not outcome.error.retryable
    assert str(outcome.error).startswith(f"{field}=")


def test_turbo_refuses_negative_prompt_guidance_img2img_and_long_runs(
    turbo: DiffusionEngine,
) -> None:
    negative, guided, image, long, default = turbo.generate(
        [
            sd3_request("n", steps=4, guidance_scale=0.0, negative_prompt="blurry"),
            sd3_request("g", steps=4, guidance_scale=3.5),
            # Its model card offers text-to-image only (Large and Medium take img2img).
            sd3_request(
                "i", steps=4, guidance_scale=0.0, task="img2img", init_image_uri="s3://b/in.png"
            ),
            sd3_request("l", steps=8, guidance_scale=0.0),
            sd3_request("d", steps=4, guidance_scale=7.5),  # the schema's default: accepted
        ]
    )
    refusals = ((negative, "negative_prompt"), (guided, "guidance_scale"), (image, "task"))
    for outcome, field in refusals:
        assert outcome.error is not None and str(outcome.error).startswith(f"{field}=")
    assert long.error is not None and str(long.error).startswith("steps=")
    assert default.ok, default.error


@pytest.mark.parametrize(
    ("dual_attention", "qk_norm", "variant"),
    [(tuple(range(13)), "rms_norm", "medium"), ((), "rms_norm", "large"), ((), None, "3-medium")],
)
def test_the_weights_say_the_variant_and_the_published_size_limit(
    dual_attention: tuple[int, ...], qk_norm: str | None, variant: str
) -> None:
    # The published configs' fields (pos_embed_max_size 192: SD3.5 Large and SD3 Medium).
    config = {
        "dual_attention_layers": dual_attention,
        "qk_norm": qk_norm,
        "pos_embed_max_size": 192,
    }
    pipeline = SimpleNamespace(
        transformer=SimpleNamespace(config=SimpleNamespace(**config)),
        vae=SimpleNamespace(config=SimpleNamespace(block_out_channels=(128, 256, 512, 512))),
    )
    rules = SD3.rules(pipeline)
    assert (rules.variant, rules.size_multiple, rules.max_size) == (variant, 16, 3072)


def test_a_request_without_a_scheduler_gets_flow_matching_euler(large: DiffusionEngine) -> None:
    assert large.shape_of(sd3_request("a")).scheduler == "euler"


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ("medium", r"engine\.models\[sd3\].*large-turbo is SD3\.5 Large distilled.*medium"),
        (
            "large#turbo",
            r"engine\.models\[sd3\].*#turbo: sd3 has no such preset \(presets: large-turbo\)",
        ),
    ],
)
def test_a_preset_the_weights_cannot_take_is_a_config_error(
    tiny_sd3_large_dir: Path, medium_dir: Path, model: str, match: str
) -> None:
    source = {"medium": f"{medium_dir}{TURBO}", "large#turbo": f"{tiny_sd3_large_dir}#turbo"}[model]
    with pytest.raises(ConfigError, match=match):
        DiffusionEngine(EngineSettings(models={"sd3": source}))


def test_start_up_checks_the_path_before_the_preset(tiny_sd3_large_dir: Path) -> None:
    check_model_sources({"sd3": f"{tiny_sd3_large_dir}{TURBO}"})
    with pytest.raises(ConfigError, match=r"does not exist"):
        check_model_sources({"sd3": f"{tiny_sd3_large_dir}-missing{TURBO}"})


@pytest.mark.parametrize("engine_name", ["medium", "turbo"])
@pytest.mark.parametrize("rows", [1, 3])
def test_padded_denoiser_equals_the_plain_one(
    request: pytest.FixtureRequest, engine_name: str, rows: int
) -> None:
    """The CUDA-graph path's padding on the CPU, without a capture, with and without the
    negative half: what tests/gpu captures."""
    engine: DiffusionEngine = request.getfixturevalue(engine_name)
    parts = engine.parts("sd3")
    prompts = [f"p{i}" for i in range(rows)]
    cond = parts.family.encode(
        parts, prompts, [""] * rows, width=64, height=64, device=engine.device
    )
    latents = torch.randn(rows, 16, 8, 8, generator=torch.Generator().manual_seed(rows))
    guidance = torch.linspace(0.5, 5.0, rows)
    t = torch.tensor(700.0)
    graphs = BucketGraphs(parts, engine.device, capture=False)
    with torch.no_grad():
        padded = graphs.noise_predictor((1, 2, 4))(latents, t, cond, guidance)
        plain = eager_noise(parts)(latents, t, cond, guidance)
    torch.testing.assert_close(padded, plain, atol=1e-4, rtol=0)
