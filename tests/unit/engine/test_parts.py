"""Schedulers, seeds, batch limits, image encoding, settings checks and model init."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from streamgen.cli.model import model
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.knobs import check_knobs
from streamgen.engine.loading import check_dtype, model_sources, resolve_device
from streamgen.engine.memory import BatchLimits, largest_fitting_power_of_two
from streamgen.engine.model_init import write_model
from streamgen.engine.schedulers import SCHEDULERS, check_scheduler_name, make_scheduler
from streamgen.engine.seeds import request_seed
from streamgen.errors import ConfigError, DeviceLost, InvalidRequest
from streamgen.settings import EngineSettings
from tests.unit.engine.conftest import assert_same_images, request


def test_scheduler_names() -> None:
    assert {"dpmpp_2m", "euler_a", "ddim", "unipc", "euler", "pndm"} <= set(SCHEDULERS)
    with pytest.raises(InvalidRequest, match=r"dpmpp_2m, .*euler_a"):
        check_scheduler_name("lms")


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_builds_from_a_checkpoint_config(
    engine: DiffusionEngine, name: str
) -> None:
    scheduler = make_scheduler(name, engine.parts("tiny").scheduler_config)
    scheduler.set_timesteps(5)
    assert len(scheduler.timesteps) >= 5


def test_engine_rejects_what_the_model_cannot_do(engine: DiffusionEngine) -> None:
    outcomes = engine.generate(
        [
            request("s", scheduler="lms"),
            request("m", model="nope"),
            request("w", width=60),
            request("ok"),
        ]
    )
    codes = [o.error.code if o.error else None for o in outcomes]
    assert codes == ["INVALID_REQUEST"] * 3 + [None]
    assert "scheduler" in str(outcomes[0].error) and "multiple of 8" in str(outcomes[2].error)
    assert not any(o.error.retryable for o in outcomes[:3] if o.error)


def test_request_seed() -> None:
    assert request_seed(request("x", seed=-5)) == -5
    derived = request_seed(request("abc", seed=None))
    assert derived == int.from_bytes(hashlib.sha256(b"abc").digest()[:8], "big") >> 1


@given(limit=st.integers(min_value=1, max_value=200), cap=st.integers(min_value=1, max_value=128))
def test_largest_fitting_power_of_two(limit: int, cap: int) -> None:
    best = largest_fitting_power_of_two(lambda n: n <= limit, cap)
    assert best & (best - 1) == 0 and best <= max(1, min(limit, cap))
    assert best * 2 > min(limit, cap) or (best == 1 and limit < 1)


def test_batch_limits_probe_once_per_key_and_lower_on_oom() -> None:
    probed: list[tuple[str, int]] = []

    def probe(key: object, size: int) -> None:
        probed.append((str(key), size))
        if size > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    limits = BatchLimits(fixed=0, cap=64, probe=probe)
    assert limits.get("a") == 8 and limits.get("a") == 8
    assert probed == [("a", 1), ("a", 2), ("a", 4), ("a", 8), ("a", 16)]
    limits.lower("a", 8)
    assert limits.get("a") == 4
    assert BatchLimits(fixed=3, cap=64, probe=probe).get("b") == 3


def test_a_shape_that_cannot_run_stops_the_probe_instead_of_the_worker() -> None:
    # The shape comes from a request: its requests then fail one by one in the engine.
    def probe(key: object, size: int) -> None:
        if size > 2:
            raise ValueError("steps exceed the scheduler's timesteps")

    assert BatchLimits(fixed=0, cap=64, probe=probe).get("a") == 2


def test_a_fatal_device_error_while_probing_is_device_lost() -> None:
    def probe(key: object, size: int) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    with pytest.raises(DeviceLost, match="illegal memory access"):
        BatchLimits(fixed=0, cap=64, probe=probe).get("a")


def test_settings_are_checked_by_name() -> None:
    with pytest.raises(ConfigError, match=r"engine\.dtype"):
        check_dtype("float16", torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"engine\.device"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match=r"engine\.attention"):
        check_knobs(EngineSettings(attention="xformers"), torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"engine\.models"):
        DiffusionEngine(EngineSettings(models={}))
    with pytest.raises(ConfigError, match=r"engine\.models\[x\]"):
        DiffusionEngine(EngineSettings(models={"x": "/nonexistent/dir/for/sure"}))
    assert model_sources({"a": "/p", "b": "/q"}) == {"a": "/p", "b": "/q", "default": "/p"}


# fuse_qkv: every family, test_fuse_qkv.py.
@pytest.mark.parametrize("knob", ["channels_last", "vae_slicing"])
def test_speed_knobs_change_nothing_but_speed(
    tiny_dir: Path, engine: DiffusionEngine, knob: str
) -> None:
    tuned = DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}, **{knob: True}))
    batch = [request("a", seed=1), request("b", seed=2, num_images=2)]
    for a, b in zip(engine.generate(batch), tuned.generate(batch), strict=True):
        assert_same_images(a, b)


def test_model_init_is_deterministic_and_loads_as_default(tiny_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(model, ["init", "--arch", "tiny", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    for part in ("unet", "vae", "text_encoder"):
        ours = next((tmp_path / "m" / part).glob("*.safetensors")).read_bytes()
        theirs = next((tiny_dir / part).glob("*.safetensors")).read_bytes()
        assert ours == theirs
    engine = DiffusionEngine(EngineSettings(models={"first": str(tmp_path / "m")}))
    (outcome,) = engine.generate([request("d", model="default")])
    assert outcome.ok
    again = CliRunner().invoke(model, ["init", "--arch", "tiny", "--out", str(tmp_path / "m")])
    assert again.exit_code != 0 and "not empty" in again.output
    with pytest.raises(ValueError, match="arch='nope'"):
        write_model("nope", tmp_path / "x")
