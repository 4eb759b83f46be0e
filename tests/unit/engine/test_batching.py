"""Invariant 7: an image generated inside a mixed batch equals the image generated alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.schedulers import SCHEDULERS
from streamgen.engine.seeds import request_seed
from streamgen.settings import EngineSettings
from tests.unit.engine.conftest import (
    assert_batched_equals_alone,
    assert_same_images,
    pixels,
    request,
)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_mixed_batch_equals_alone_for_every_scheduler(
    engine: DiffusionEngine, scheduler: str
) -> None:
    mix = [
        request("a", seed=11, scheduler=scheduler),
        request("b", seed=12, negative_prompt="blurry", guidance_scale=2.0, scheduler=scheduler),
        request("c", seed=None, guidance_scale=12.0, num_images=2, scheduler=scheduler),
    ]
    assert_batched_equals_alone(engine, mix)


def test_prompts_seeds_and_guidance_each_change_the_image(engine: DiffusionEngine) -> None:
    base = request("base", seed=3)
    variants = [
        base,
        base.replace(prompt="something else"),
        base.replace(seed=4),
        base.replace(guidance_scale=1.0),
        base.replace(negative_prompt="ugly"),
    ]
    images = [pixels(o)[0] for o in engine.generate(variants)]
    for i, a in enumerate(images):
        for b in images[i + 1 :]:
            assert np.abs(a - b).max() > 1


def test_num_images_use_consecutive_seeds(engine: DiffusionEngine) -> None:
    (many,) = engine.generate([request("many", seed=40, num_images=3)])
    assert many.seed == 40 and len(many.images) == 3
    for i in range(3):
        (single,) = engine.generate([request("one", seed=40 + i, prompt=many.request.prompt)])
        assert np.abs(pixels(many)[i] - pixels(single)[0]).max() <= 1


def test_seedless_requests_get_a_seed_derived_from_their_id(engine: DiffusionEngine) -> None:
    (first,) = engine.generate([request("no-seed", seed=None)])
    (again,) = engine.generate([request("no-seed", seed=None)])
    assert first.seed == again.seed == request_seed(request("no-seed", seed=None))
    assert 0 <= first.seed < 2**63
    assert_same_images(first, again)
    (other,) = engine.generate([request("other-id", seed=None)])
    assert other.seed != first.seed


def test_outcomes_report_batch_size_and_time(engine: DiffusionEngine) -> None:
    outcomes = engine.generate([request("a"), request("b", num_images=2)])
    assert [o.batch_size for o in outcomes] == [3, 3]
    assert all(o.gpu_seconds > 0 for o in outcomes)


def test_batches_larger_than_the_limit_are_split_and_still_equal(tiny_dir: Path) -> None:
    small = DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}, max_batch_size=2))
    outcomes = assert_batched_equals_alone(
        small, [request("a", seed=1), request("b", seed=2, num_images=2), request("c", seed=3)]
    )
    assert max(o.batch_size for o in outcomes) == 2


def test_sdxl_architecture_batched_equals_alone(tiny_sdxl_dir: Path) -> None:
    engine = DiffusionEngine(EngineSettings(models={"tiny": str(tiny_sdxl_dir)}))
    assert engine.parts("tiny").rules.family == "sdxl"
    assert_batched_equals_alone(
        engine,
        [request("a", seed=5), request("b", seed=6, negative_prompt="dark", guidance_scale=3.0)],
    )


def test_requests_of_several_shapes_come_back_in_order(engine: DiffusionEngine) -> None:
    mix = [request("a", steps=2), request("b", steps=3), request("c", steps=2, width=72)]
    outcomes = engine.generate(mix)
    assert [o.request.request_id for o in outcomes] == ["a", "b", "c"]
    assert outcomes[2].images[0].size == (72, 64)
