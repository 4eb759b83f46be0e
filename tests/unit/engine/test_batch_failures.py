"""Per-request failures: poison bisection, OOM halving, NaN and black images, fatal errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from streamgen.engine.batch_failures import FailureKind, classify_device_error, run_isolating
from streamgen.engine.decode import check_pixels
from streamgen.engine.engine import DiffusionEngine
from streamgen.errors import DeviceLost, GenerationFailed
from streamgen.settings import EngineSettings
from tests.unit.engine.conftest import assert_same_images, request


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "OOM"),
        (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), "OOM"),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), "FATAL"),
        (RuntimeError("CUDA error: device-side assert triggered"), "FATAL"),
        (RuntimeError("CUDA error: unspecified launch failure"), "FATAL"),
        (RuntimeError("CUDA error: uncorrectable ECC error encountered"), "FATAL"),
        (RuntimeError("shape mismatch"), "ERROR"),
        (ValueError("out of memory"), "ERROR"),
    ],
)
def test_classify_device_error(exc: BaseException, kind: str) -> None:
    expected = {
        "OOM": FailureKind.OUT_OF_MEMORY,
        "FATAL": FailureKind.FATAL,
        "ERROR": FailureKind.ERROR,
    }
    assert classify_device_error(exc) is expected[kind]


@given(
    n=st.integers(min_value=1, max_value=40),
    poison=st.sets(st.integers(min_value=0, max_value=39)),
)
def test_run_isolating_fails_exactly_the_poison_items(n: int, poison: set[int]) -> None:
    def run(items: Any) -> list[str]:
        if any(i in poison for i in items):
            raise RuntimeError("poisoned batch")
        return [f"ok{i}" for i in items]

    results = run_isolating(list(range(n)), run, lambda i, e: f"failed{i}:{e.code}")
    assert results == [f"failed{i}:GENERATION_ERROR" if i in poison else f"ok{i}" for i in range(n)]


def test_run_isolating_raises_device_lost_on_fatal_errors() -> None:
    def run(items: Any) -> list[int]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    with pytest.raises(DeviceLost):
        run_isolating([1, 2, 3], run, lambda i, e: 0)


def test_run_isolating_reports_each_oom_size() -> None:
    sizes: list[int] = []

    def run(items: Any) -> list[int]:
        if len(items) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return list(items)

    assert run_isolating(list(range(8)), run, lambda i, e: -1, after_oom=sizes.append) == list(
        range(8)
    )
    assert sizes == [8, 4, 4]


@pytest.fixture
def own_engine(tiny_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}))


def test_poison_request_is_isolated_and_the_others_succeed(
    own_engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = own_engine.parts("tiny")
    poison_id = parts.tokenizers[0]("~").input_ids[1]
    encoder = parts.text_encoders[0]
    forward = encoder.forward

    def poisoned(input_ids: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if (input_ids == poison_id).any():
            raise RuntimeError("the text encoder cannot take '~'")
        return forward(input_ids, *args, **kwargs)

    batch = [request("a", seed=1), request("bad", prompt="~~~"), request("c", seed=3)]
    expected = [own_engine.generate([r])[0] for r in (batch[0], batch[2])]
    monkeypatch.setattr(encoder, "forward", poisoned)
    outcomes = own_engine.generate(batch)
    assert outcomes[1].error is not None and outcomes[1].error.code == "GENERATION_ERROR"
    assert "cannot take" in str(outcomes[1].error)
    assert_same_images(outcomes[0], expected[0])
    assert_same_images(outcomes[2], expected[1])


def test_oom_splits_the_batch_and_loses_nothing(
    own_engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [request(f"r{i}", seed=i) for i in range(4)]
    expected = own_engine.generate(batch)
    unet = own_engine.parts("tiny").denoiser
    forward = unet.forward

    def small_memory(sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if sample.shape[0] > 2:  # two rows (negative + positive) = one image fits
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", small_memory)
    shape = own_engine.shape_of(batch[0])
    outcomes = own_engine.generate(batch)
    for got, want in zip(outcomes, expected, strict=True):
        assert_same_images(got, want)
    assert {o.batch_size for o in outcomes} == {1}
    assert own_engine.max_batch_size(shape) == 1  # remembered: the next batch starts small


def test_oom_alone_is_a_per_request_error(
    own_engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(own_engine.parts("tiny").denoiser, "forward", no_memory)
    outcomes = own_engine.generate([request("a"), request("b")])
    assert [o.error.code if o.error else None for o in outcomes] == ["OUT_OF_MEMORY"] * 2


def test_non_finite_latents_fail_only_their_request(engine: DiffusionEngine) -> None:
    good, bad = engine.generate([request("good"), request("bad", guidance_scale=float("nan"))])
    assert good.ok and len(good.images) == 1
    assert isinstance(bad.error, GenerationFailed) and bad.error.code == "NON_FINITE_LATENTS"
    assert bad.images == ()


def test_black_images_are_errors(
    own_engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    vae = own_engine.parts("tiny").vae

    def black(latents: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor]:
        return (-torch.ones(latents.shape[0], 3, 64, 64),)

    monkeypatch.setattr(vae, "decode", black)
    (outcome,) = own_engine.generate([request("dark")])
    assert outcome.error is not None and outcome.error.code == "BLACK_IMAGE"


def test_check_pixels_flags_only_black_rows() -> None:
    rows = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    rows[0, 1, 1, 2] = 1
    rows[2] = 255
    assert [e is None for e in check_pixels(rows)] == [True, False, True]
