"""Settings are parsed and checked once, by the loader, into typed values: every bad value is a
ConfigError naming its setting (exit 4 at start-up), never a string the code that reads it has
to check again."""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.configuration import load_settings
from streamgen.contracts.formats import FORMATS
from streamgen.engine.warmup import parse_entry
from streamgen.errors import ConfigError
from streamgen.settings import ImageFormatName, WarmupShape

BAD = [
    # (environment variable, value, the setting the error names, what the message says)
    ("ENGINE_DEVICE", "gpu", "engine.device", "auto, cpu, cuda or cuda:N"),
    ("ENGINE_DEVICE", "cuda:", "engine.device", "cuda:N"),
    ("ENGINE_DEVICE", "cuda:one", "engine.device", "cuda:N"),
    ("ENGINE_DEVICE", "mps", "engine.device", "cuda:N"),
    ("ENGINE_MODELS", "a=", "engine.models[a]", "PATH_OR_HUB_ID"),
    ("ENGINE_MODELS", "a=#large-turbo", "engine.models[a]", "PATH_OR_HUB_ID"),
    ("ENGINE_MODELS", "a=/m#", "engine.models[a]", "PATH_OR_HUB_ID"),
    ("ENGINE_MODELS", "a=/m#x#y", "engine.models[a]", "PATH_OR_HUB_ID"),
    ("ENGINE_DEFAULT_SCHEDULER", "warp", "engine.default_scheduler", "dpmpp_2m"),
    ("ENGINE_DTYPE", "fp16", "engine.dtype", "auto|float16|bfloat16|float32"),
    ("ENGINE_ATTENTION", "flash", "engine.attention", "sdpa|xformers"),
    ("ENGINE_COMPILE_MODE", "reduce-overhead", "engine.compile_mode", "default|max-autotune"),
    ("ENGINE_WARMUP_SHAPES", "512x512", "engine.warmup_shapes", "WIDTHxHEIGHTxSTEPS"),
    ("ENGINE_WARMUP_SHAPES", "512x512x30,huge", "engine.warmup_shapes", "'huge'"),
    ("ENGINE_WARMUP_SHAPES", "512x512x30@nope", "engine.warmup_shapes", "model 'nope'"),
    ("WORKER_GROUP_PROTOCOL", "Consumer", "worker.group_protocol", "classic|consumer"),
    ("WORKER_METRICS_PORT", "70000", "worker.metrics_port", "0..65535"),
    ("WORKER_METRICS_PORT", "-1", "worker.metrics_port", "0..65535"),
    ("WORKER_STALL_TIMEOUT_S", "nan", "worker.stall_timeout_s", "finite"),
    ("WORKER_DRAIN_TIMEOUT_S", "inf", "worker.drain_timeout_s", "finite"),
    ("STORE_IMAGE_FORMAT", "tiff", "store.image_format", "png|jpeg|webp"),
]


@pytest.mark.parametrize(("variable", "value", "setting", "says"), BAD)
def test_a_bad_value_is_a_config_error_naming_its_setting(
    variable: str, value: str, setting: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={f"STREAMGEN_{variable}": value})
    assert caught.value.setting == setting
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("table", "setting"),
    [
        ("[engine]\ndtype = 16\n", "engine.dtype"),
        ("[engine]\nattention = true\n", "engine.attention"),
        ("[worker]\ngroup_protocol = ['classic']\n", "worker.group_protocol"),
    ],
)
def test_a_value_of_the_wrong_toml_type_is_named(tmp_path: Path, table: str, setting: str) -> None:
    config = tmp_path / "streamgen.toml"
    config.write_text(table)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config, env={})
    assert caught.value.setting == setting


def test_good_values_arrive_typed() -> None:
    s = load_settings(
        env={
            "STREAMGEN_ENGINE_MODELS": "sd=/m,turbo=/m#large-turbo",
            "STREAMGEN_ENGINE_DEVICE": "cuda:1",
            "STREAMGEN_ENGINE_DTYPE": " bfloat16 ",
            "STREAMGEN_ENGINE_WARMUP_SHAPES": "512x512x30, 1024x768x4:euler@turbo",
            "STREAMGEN_WORKER_GROUP_PROTOCOL": "consumer",
        }
    )
    assert s.engine.warmup_shapes == (
        WarmupShape(512, 512, 30),
        WarmupShape(1024, 768, 4, "euler", "turbo"),
    )
    assert (s.engine.device, s.engine.dtype, s.worker.group_protocol) == (
        "cuda:1",
        "bfloat16",
        "consumer",
    )


def test_the_image_format_names_are_the_formats_the_store_writes() -> None:
    assert set(typing.get_args(ImageFormatName)) == set(FORMATS)


_SIZES = st.integers(min_value=0, max_value=10**6)
_NAMES = st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True)


@given(
    _SIZES,
    _SIZES,
    _SIZES,
    st.one_of(st.just(""), _NAMES),
    st.one_of(st.just("default"), st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)),
)
def test_a_written_entry_parses_back_to_itself(
    width: int, height: int, steps: int, scheduler: str, model: str
) -> None:
    text = f"{width}x{height}x{steps}" + (f":{scheduler}" if scheduler else "")
    text += "" if model == "default" else f"@{model}"
    assert parse_entry(f" {text} ") == WarmupShape(width, height, steps, scheduler, model)


@given(st.text(max_size=40))
def test_any_text_is_an_entry_or_a_config_error_naming_the_setting(text: str) -> None:
    try:
        entry = parse_entry(text)
    except ConfigError as exc:
        assert exc.setting == "engine.warmup_shapes"
    else:
        assert min(entry.width, entry.height, entry.steps) >= 0


@given(st.text(max_size=20))
def test_any_number_text_is_a_finite_number_or_a_config_error(text: str) -> None:
    try:
        s = load_settings(env={"STREAMGEN_WORKER_STALL_TIMEOUT_S": text})
    except ConfigError as exc:
        assert exc.setting == "worker.stall_timeout_s"
    else:
        assert math.isfinite(s.worker.stall_timeout_s) and s.worker.stall_timeout_s > 0


def test_share_requeue_needs_room_for_a_window_and_two_chunks() -> None:
    share = {"STREAMGEN_WORKER_MODE": "share", "STREAMGEN_WORKER_MAX_IN_FLIGHT": "2"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env=share)
    assert caught.value.setting == "worker.max_in_flight"
    assert "worker.share_requeue=false" in str(caught.value)
    assert load_settings(env={**share, "STREAMGEN_WORKER_SHARE_REQUEUE": "false"}).worker.mode
    assert load_settings(env={**share, "STREAMGEN_WORKER_MAX_IN_FLIGHT": "3"}).worker.mode
