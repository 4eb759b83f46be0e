"""engine.warmup_shapes: parsed once at start-up; a bad entry is a ConfigError naming it."""

from __future__ import annotations

import pytest

from streamgen.configuration import load_settings
from streamgen.engine.schedulers import SCHEDULERS
from streamgen.engine.types import Shape
from streamgen.engine.warmup import parse_warmup_shapes
from streamgen.errors import ConfigError
from streamgen.settings import WarmupShape


def parse(*entries: str) -> list[Shape]:
    return parse_warmup_shapes(
        entries, default_scheduler="dpmpp_2m", models=["sd15", "sdxl"], schedulers=SCHEDULERS
    )


def test_entries_take_the_default_model_and_scheduler() -> None:
    assert parse("512x512x30", " 768x512x20:euler@sdxl ", "512x512x30") == [
        Shape("default", "txt2img", 512, 512, 30, "dpmpp_2m"),
        Shape("sdxl", "txt2img", 768, 512, 20, "euler"),
    ]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("512x512", "WIDTHxHEIGHTxSTEPS"),
        ("512*512*30", "WIDTHxHEIGHTxSTEPS"),
        ("500x512x30", "multiple of 8"),
        ("512x4096x30", "multiple of 8"),
        ("512x512x0", "steps 0"),
        ("512x512x30:warp", "scheduler 'warp'"),
        ("512x512x30@nope", "model 'nope'"),
    ],
)
def test_a_bad_entry_names_the_setting_and_the_entry(entry: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"engine\.warmup_shapes") as caught:
        parse(entry)
    assert says in str(caught.value) and caught.value.setting == "engine.warmup_shapes"


def test_settings_validate_the_entries_at_start_up() -> None:
    env = {"STREAMGEN_ENGINE_MODELS": "sd15=/m", "STREAMGEN_ENGINE_WARMUP_SHAPES": "512x512x30"}
    assert load_settings(env=env).engine.warmup_shapes == (WarmupShape(512, 512, 30),)
    with pytest.raises(ConfigError) as caught:
        load_settings(env={**env, "STREAMGEN_ENGINE_WARMUP_SHAPES": "512x512x30,huge"})
    assert caught.value.setting == "engine.warmup_shapes"
