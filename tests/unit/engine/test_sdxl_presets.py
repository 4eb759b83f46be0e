"""Few-step SDXL presets (``NAME=PATH#PRESET``) on the tiny SDXL pipeline (CPU, float32): each
gives stock diffusers' ``StableDiffusionXLPipeline`` image when that is run with the preset's
scheduler settings and ``guidance_scale=0``; a batch equals its requests alone; and each preset
refuses, naming the field, what its distillation cannot honour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.families.sdxl_presets import PRESETS
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

# preset -> (diffusers scheduler class, its from_config overrides, __call__ extras, steps)
STOCK: dict[str, tuple[str, dict[str, Any], dict[str, Any], int]] = {
    "turbo": ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}, {}, 2),
    "lightning-4step": ("EulerDiscreteScheduler", {"timestep_spacing": "trailing"}, {}, 4),
    "dmd2": ("LCMScheduler", {}, {"timesteps": [999, 749, 499, 249]}, 4),
}


@pytest.fixture(scope="module")
def presets(tiny_sdxl_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(
        EngineSettings(models={name: f"{tiny_sdxl_dir}#{name}" for name in PRESETS})
    )


def preset_request(preset: str, request_id: str = "r", **fields: Any) -> GenerationRequest:
    base = {"model": preset, "steps": PRESETS[preset].max_steps, "guidance_scale": 0.0, "seed": 3}
    return request(request_id, **{**base, **fields})


@pytest.mark.parametrize("preset", sorted(STOCK))
def test_a_preset_equals_stock_sdxl_with_its_scheduler(
    presets: DiffusionEngine, tiny_sdxl_dir: Path, preset: str
) -> None:
    import diffusers

    scheduler_class, overrides, extra, steps = STOCK[preset]
    request = preset_request(preset, steps=steps, width=96, height=64)
    (outcome,) = presets.generate([request])
    (ours,) = pixels(outcome)
    pipe = stock_pipeline("StableDiffusionXLPipeline", tiny_sdxl_dir)
    pipe.scheduler = getattr(diffusers, scheduler_class).from_config(
        pipe.scheduler.config, **overrides
    )
    theirs = stock_pixels(pipe, request, guidance_scale=0.0, **extra)
    assert ours.shape == theirs.shape == (64, 96, 3)
    assert np.abs(ours - theirs).max() <= MAX_LEVELS
    assert outcome.family == f"sdxl [{preset}]"


def test_turbo_batched_equals_alone_with_mixed_prompts_seeds_and_sizes(
    presets: DiffusionEngine,
) -> None:
    # Euler ancestral draws noise every step: each row from its own generator.
    outcomes = assert_batched_equals_alone(
        presets,
        [
            preset_request("turbo", "a", seed=1, steps=1),
            preset_request("turbo", "b", seed=2, steps=1, num_images=2),
            preset_request("turbo", "c", seed=3, steps=1, width=32, height=48),
        ],
    )
    assert max(o.batch_size for o in outcomes) == 3


@pytest.mark.parametrize(
    ("preset", "fields", "field"),
    [
        ("turbo", {"steps": 5}, "steps"),
        ("turbo", {"guidance_scale": 2.0}, "guidance_scale"),
        ("turbo", {"negative_prompt": "blurry"}, "negative_prompt"),
        ("turbo", {"scheduler": "dpmpp_2m"}, "scheduler"),
        ("lightning-2step", {"steps": 4}, "steps"),
        ("lightning-8step", {"steps": 4}, "steps"),
        ("lightning-4step", {"guidance_scale": 5.0}, "guidance_scale"),
        ("dmd2", {"steps": 1}, "steps"),
        ("dmd2", {"negative_prompt": "low quality"}, "negative_prompt"),
        ("dmd2", {"task": "img2img", "init_image_uri": "s3://bucket/in.png"}, "task"),
    ],
)
def test_a_preset_refuses_what_its_distillation_cannot_honour(
    presets: DiffusionEngine, preset: str, fields: dict[str, Any], field: str
) -> None:
    (outcome,) = presets.generate([preset_request(preset, **fields)])
    assert outcome.error is not None and outcome.error.code == "INVALID_REQUEST"
    assert str(outcome.error).startswith(f"{field}=")


def test_each_preset_defaults_to_its_own_scheduler(presets: DiffusionEngine) -> None:
    chosen = {name: presets.shape_of(preset_request(name)).scheduler for name in PRESETS}
    assert chosen == {name: preset.scheduler for name, preset in PRESETS.items()}
    # The schema's default guidance is "left alone", so it is served (as 0).
    (outcome,) = presets.generate([preset_request("lightning-2step", guidance_scale=7.5)])
    assert outcome.ok, outcome.error


def test_an_unknown_preset_or_one_on_another_family_is_refused_at_load(
    tiny_sdxl_dir: Path, tiny_dir: Path
) -> None:
    with pytest.raises(ConfigError, match=r"engine\.models\[x\].*#lightning.*turbo"):
        DiffusionEngine(EngineSettings(models={"x": f"{tiny_sdxl_dir}#lightning"}))
    with pytest.raises(ConfigError, match=r"engine\.models\[y\].*#turbo.*sd15"):
        DiffusionEngine(EngineSettings(models={"y": f"{tiny_dir}#turbo"}))
