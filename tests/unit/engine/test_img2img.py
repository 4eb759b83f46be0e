"""img2img: init images through the ObjectStore interface, batched, validated per request."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.img2img import start_step
from streamgen.errors import StoreUnavailable
from streamgen.settings import EngineSettings
from tests.unit.engine.conftest import assert_batched_equals_alone, pixels, request
from tests.unit.memory_store import MemoryStore


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(sum(size))
    array = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


OBJECTS = {
    "mem://cat.png": _png((64, 64)),
    "mem://big.png": _png((100, 80)),  # resized to the request's size
    "mem://gray.png": _png((64, 64), "L"),  # converted to RGB
    "mem://broken.png": b"\x89PNG not really",
}


@pytest.fixture(scope="module")
def img_engine(tiny_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}), MemoryStore(OBJECTS))


def _img(request_id: str, uri: str, **fields: object) -> object:
    return request(request_id, task="img2img", init_image_uri=uri, steps=4, **fields)


def test_img2img_batched_equals_alone(img_engine: DiffusionEngine) -> None:
    mix = [
        _img("a", "mem://cat.png", seed=1, strength=0.5),
        _img("b", "mem://big.png", seed=2, strength=0.5, num_images=2),
        _img("c", "mem://gray.png", seed=3, strength=0.75, scheduler="euler_a"),
        _img("d", "mem://cat.png", seed=4, strength=1.0, guidance_scale=3.0),
    ]
    outcomes = assert_batched_equals_alone(img_engine, mix)  # type: ignore[arg-type]
    assert all(o.images[0].size == (64, 64) for o in outcomes)


def test_strength_decides_how_far_the_image_moves(img_engine: DiffusionEngine) -> None:
    init = np.asarray(Image.open(io.BytesIO(OBJECTS["mem://cat.png"])), dtype=np.int16)
    weak, strong = img_engine.generate(
        [_img("w", "mem://cat.png", strength=0.25), _img("s", "mem://cat.png", strength=1.0)]  # type: ignore[list-item]
    )
    assert np.abs(pixels(weak)[0] - init).mean() < np.abs(pixels(strong)[0] - init).mean()


def test_bad_init_images_fail_alone(img_engine: DiffusionEngine) -> None:
    broken, missing, fine = img_engine.generate(
        [
            _img("x", "mem://broken.png"),  # type: ignore[list-item]
            _img("y", "mem://nowhere.png"),  # type: ignore[list-item]
            _img("z", "mem://cat.png"),  # type: ignore[list-item]
        ]
    )
    assert broken.error is not None and broken.error.code == "INIT_IMAGE_INVALID"
    assert "cannot be decoded" in str(broken.error) and not broken.error.retryable
    assert missing.error is not None and missing.error.code == "INIT_IMAGE_INVALID"
    assert "does not exist" in str(missing.error)
    assert fine.ok


def test_store_outage_is_transient_not_a_request_failure(tiny_dir: Path) -> None:
    engine = DiffusionEngine(
        EngineSettings(models={"tiny": str(tiny_dir)}), MemoryStore(OBJECTS, down=True)
    )
    with pytest.raises(StoreUnavailable):
        engine.generate([_img("a", "mem://cat.png")])  # type: ignore[list-item]


def test_img2img_without_a_store_is_an_error(engine: DiffusionEngine) -> None:
    (outcome,) = engine.generate([_img("a", "mem://cat.png")])  # type: ignore[list-item]
    assert outcome.error is not None and "object store" in str(outcome.error)


@pytest.mark.parametrize(
    ("steps", "strength", "start"), [(30, 1.0, 0), (30, 0.5, 15), (10, 0.01, 9), (4, 0.8, 1)]
)
def test_start_step(steps: int, strength: float, start: int) -> None:
    assert start_step(steps, strength) == start
