"""``engine.compile_mode``: what each mode asks of Inductor, refused where nothing compiles, and
AOT packages of a tuned mode compiled with its options under their own key."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from streamgen.engine.aot import COMPILE_MODES, AotModules
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.knobs import check_knobs
from streamgen.errors import ConfigError
from streamgen.settings import CompileMode, EngineSettings

CPU = torch.device("cpu")


def test_every_mode_is_known_and_max_autotune_is_torchs_without_its_cuda_graphs() -> None:
    assert set(COMPILE_MODES) == set(typing.get_args(CompileMode))
    torchs = torch._inductor.list_mode_options("max-autotune-no-cudagraphs")
    assert COMPILE_MODES["max-autotune"] == torchs
    assert COMPILE_MODES["default"] == {}


def test_a_tuned_mode_with_nothing_to_compile_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"compile or engine\.aot_compile") as raised:
        check_knobs(EngineSettings(compile_mode="max-autotune"), CPU)
    assert raised.value.setting == "engine.compile_mode"
    check_knobs(EngineSettings(compile=True, compile_mode="max-autotune"), CPU)
    aot = EngineSettings(aot_compile=True, compile_cache_dir="/tmp/x", compile_mode="max-autotune")
    check_knobs(aot, CPU)


def test_aot_packages_of_a_tuned_mode_get_its_options_and_their_own_key(
    engine: DiffusionEngine,
) -> None:
    parts = engine.parts("tiny")
    plain = EngineSettings(aot_compile=True, compile_cache_dir="/tmp/x")
    tuned = dataclasses.replace(plain, compile_mode="max-autotune")
    default = AotModules.configured(parts, plain, "torch-cpu")
    autotuned = AotModules.configured(parts, tuned, "torch-cpu")
    assert default is not None and autotuned is not None
    assert default._label != autotuned._label
    assert "max_autotune" not in default._inductor
    assert autotuned._inductor["max_autotune"] and autotuned._inductor["coordinate_descent_tuning"]
    # What every package needs stays: the weights outside the package.
    assert autotuned._inductor["aot_inductor.package_constants_in_so"] is False
