"""``benchmarks.families --best-knobs``: engine settings read by the worker's own loader."""

from __future__ import annotations

import pytest

from benchmarks.families import main
from benchmarks.family_runners import knob_settings, runner_name
from streamgen.errors import ConfigError


def test_a_name_turns_its_setting_on_and_name_value_sets_it() -> None:
    knobs = ["compile", "cuda_graphs", "fuse_qkv", "compile_mode=max-autotune"]
    settings = knob_settings(knobs, models={"bench": "/m"}, max_batch_size=2)
    assert settings.compile and settings.cuda_graphs and settings.fuse_qkv
    assert settings.compile_mode == "max-autotune"
    assert settings.models == {"bench": "/m"} and settings.max_batch_size == 2
    assert not settings.channels_last and not settings.aot_compile
    assert runner_name(knobs) == "streamgen+compile+cuda_graphs+fuse_qkv+compile_mode=max-autotune"
    assert runner_name([]) == "streamgen"


@pytest.mark.parametrize(
    ("knob", "setting", "says"),
    [
        ("fuse_qvk", "engine.fuse_qvk", "did you mean engine.fuse_qkv"),
        ("compile_mode=fastest", "engine.compile_mode", "default|max-autotune"),
        ("compile=maybe", "engine.compile", "true/false"),
    ],
)
def test_a_bad_knob_is_refused_naming_the_setting(knob: str, setting: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as raised:
        knob_settings(["compile", knob])
    assert raised.value.setting == setting


@pytest.mark.parametrize(
    ("knobs", "says"), [("compile,fuse_qvk", "engine.fuse_qvk"), ("", "empty")]
)
def test_the_benchmark_stops_on_a_bad_knob_set_before_any_model(
    capsys: pytest.CaptureFixture[str], knobs: str, says: str
) -> None:
    tuned = ["--best-knobs", "compile,cuda_graphs", "--best-knobs", knobs]
    assert main(["--family", "flux-dev", "--tiny", *tuned]) == 2
    assert says in capsys.readouterr().err
