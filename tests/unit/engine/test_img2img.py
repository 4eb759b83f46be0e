"""img2img: init images through the allow-list and the ObjectStore interface, batched,
validated per request."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.img2img import start_step
from streamgen.errors import StoreUnavailable
from streamgen.settings import EngineSettings, StoreSettings
from streamgen.store.init_images import InitImageReader
from tests.support.memory_store import MemoryStore
from tests.unit.engine.conftest import assert_batched_equals_alone, pixels, request


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(sum(size))
    array = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


STORE = "s3://images/in"
OBJECTS = {
    f"{STORE}/cat.png": _png((64, 64)),
    f"{STORE}/big.png": _png((100, 80)),  # resized to the request's size
    f"{STORE}/gray.png": _png((64, 64), "L"),  # converted to RGB
    f"{STORE}/broken.png": b"\x89PNG not really",
    "s3://elsewhere/secret.png": _png((64, 64)),
}


def reader(store: MemoryStore, max_bytes: int = 1 << 20) -> InitImageReader:
    settings = StoreSettings(url=STORE, init_image_max_bytes=max_bytes)
    return InitImageReader.from_settings(settings, store)


@pytest.fixture(scope="module")
def img_engine(tiny_dir: Path) -> DiffusionEngine:
    return DiffusionEngine(
        EngineSettings(models={"tiny": str(tiny_dir)}), reader(MemoryStore(OBJECTS))
    )


def _img(request_id: str, uri: str, **fields: object) -> object:
    return request(request_id, task="img2img", init_image_uri=uri, steps=4, **fields)


def test_img2img_batched_equals_alone(img_engine: DiffusionEngine) -> None:
    mix = [
        _img("a", f"{STORE}/cat.png", seed=1, strength=0.5),
        _img("b", f"{STORE}/big.png", seed=2, strength=0.5, num_images=2),
        _img("c", f"{STORE}/gray.png", seed=3, strength=0.75, scheduler="euler_a"),
        _img("d", f"{STORE}/cat.png", seed=4, strength=1.0, guidance_scale=3.0),
    ]
    outcomes = assert_batched_equals_alone(img_engine, mix)  # type: ignore[arg-type]
    assert all(o.images[0].size == (64, 64) for o in outcomes)


def test_strength_decides_how_far_the_image_moves(img_engine: DiffusionEngine) -> None:
    init = np.asarray(Image.open(io.BytesIO(OBJECTS[f"{STORE}/cat.png"])), dtype=np.int16)
    weak, strong = img_engine.generate(
        [_img("w", f"{STORE}/cat.png", strength=0.25), _img("s", f"{STORE}/cat.png", strength=1.0)]  # type: ignore[list-item]
    )
    assert np.abs(pixels(weak)[0] - init).mean() < np.abs(pixels(strong)[0] - init).mean()


def test_bad_init_images_fail_alone(img_engine: DiffusionEngine) -> None:
    broken, missing, fine = img_engine.generate(
        [
            _img("x", f"{STORE}/broken.png"),  # type: ignore[list-item]
            _img("y", f"{STORE}/nowhere.png"),  # type: ignore[list-item]
            _img("z", f"{STORE}/cat.png"),  # type: ignore[list-item]
        ]
    )
    assert broken.error is not None and broken.error.code == "INIT_IMAGE_INVALID"
    assert "cannot be decoded" in str(broken.error) and not broken.error.retryable
    assert missing.error is not None and missing.error.code == "INIT_IMAGE_INVALID"
    assert "does not exist" in str(missing.error)
    assert fine.ok


def test_store_outage_is_transient_not_a_request_failure(tiny_dir: Path) -> None:
    engine = DiffusionEngine(
        EngineSettings(models={"tiny": str(tiny_dir)}), reader(MemoryStore(OBJECTS, down=True))
    )
    with pytest.raises(StoreUnavailable):
        engine.generate([_img("a", f"{STORE}/cat.png")])  # type: ignore[list-item]


def test_img2img_without_a_store_is_an_error(engine: DiffusionEngine) -> None:
    (outcome,) = engine.generate([_img("a", f"{STORE}/cat.png")])  # type: ignore[list-item]
    assert outcome.error is not None and "object store" in str(outcome.error)


@pytest.mark.parametrize(
    ("steps", "strength", "start"), [(30, 1.0, 0), (30, 0.5, 15), (10, 0.01, 9), (4, 0.8, 1)]
)
def test_start_step(steps: int, strength: float, start: int) -> None:
    assert start_step(steps, strength) == start


def test_outside_the_allowed_prefixes_is_refused_unread_and_alike(tiny_dir: Path) -> None:
    store = MemoryStore(OBJECTS)
    engine = DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}), reader(store))
    outsiders = [
        "s3://elsewhere/secret.png",  # exists
        "s3://elsewhere/nothing.png",  # does not
        f"{STORE}/../../elsewhere/secret.png",
        f"{STORE}-secret/cat.png",
        "file:///etc/passwd",
        "http://example/x.png",
    ]
    outcomes = engine.generate([_img(f"o{i}", uri) for i, uri in enumerate(outsiders)])  # type: ignore[misc]
    for uri, outcome in zip(outsiders, outcomes, strict=True):
        assert outcome.error is not None and not outcome.error.retryable
        message = str(outcome.error).replace(repr(uri), "URI")
        assert message == (
            f"init_image_uri=URI is invalid: must be under one of the allowed prefixes: {STORE}"
        )
    assert store.reads == []


def test_an_init_image_over_the_size_limit_is_refused(tiny_dir: Path) -> None:
    store = MemoryStore(OBJECTS)
    engine = DiffusionEngine(
        EngineSettings(models={"tiny": str(tiny_dir)}), reader(store, max_bytes=100)
    )
    (outcome,) = engine.generate([_img("a", f"{STORE}/cat.png")])  # type: ignore[list-item]
    assert outcome.error is not None and outcome.error.code == "INIT_IMAGE_INVALID"
    assert "store.init_image_max_bytes=100 bytes" in str(outcome.error)
