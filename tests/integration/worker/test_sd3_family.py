"""The sd3 family end to end: the real worker serves SD3.5 requests (tiny random pipeline, CPU)
over the real broker and MinIO: Large with CFG and a negative prompt, and the same weights as
Large Turbo through the model mapping's preset (``#large-turbo``); results record the variant
and dtype; a negative prompt Turbo cannot honour is refused, naming the field."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamgen.engine import DiffusionEngine
from streamgen.engine.model_init import write_model
from streamgen.settings import Settings
from streamgen.store import open_store
from tests.integration.worker.conftest import (
    all_committed,
    make_request,
    publish,
    read_dead_letters,
    read_results,
    wait_until,
    worker_thread,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_sd3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny-sd3-large", tmp_path_factory.mktemp("models") / "tiny-sd3")


def test_the_worker_serves_sd3_and_its_turbo_preset(
    worker_settings: Settings, tiny_sd3: Path
) -> None:
    models = {"sd3": str(tiny_sd3), "turbo": f"{tiny_sd3}#large-turbo"}
    engine_settings = replace(worker_settings.engine, models=models)
    settings = replace(worker_settings, engine=engine_settings)
    large = {"model": "sd3", "steps": 6, "guidance_scale": 4.5}
    turbo = {"model": "turbo", "steps": 4, "guidance_scale": 0.0}
    requests = [
        make_request(0, **large, negative_prompt="blurry"),
        make_request(1, **large, width=96, num_images=2),
        make_request(2, **turbo),
    ]
    refused = make_request(3, **turbo, negative_prompt="blurry")
    publish(settings, [*requests, refused])
    with worker_thread(settings) as worker:
        results = read_results(settings, expected=4, timeout=180)
        dead = read_dead_letters(settings, expected=1)
        assert wait_until(lambda: all_committed(settings), 20)
        assert worker.stop_and_wait() == 0

    by_id = {r.request_id: r for r in results}
    assert [by_id[r.request_id].status for r in requests] == ["SUCCEEDED"] * 3
    assert [(by_id[r.request_id].family, by_id[r.request_id].dtype) for r in requests] == [
        ("sd3 [large]", "float32"),
        ("sd3 [large]", "float32"),
        ("sd3 [large-turbo]", "float32"),
    ]
    error = by_id[refused.request_id].error
    assert error is not None and error.code == "INVALID_REQUEST"
    assert error.message.startswith("negative_prompt=")
    assert len(dead) == 1
    # What the worker stored is what the engine makes of each request alone.
    store = open_store(settings.store)
    engine = DiffusionEngine(engine_settings)
    for request in (requests[1], requests[2]):
        alone = engine.generate([request])[0]
        stored = by_id[request.request_id].images
        assert len(stored) == request.num_images
        for image, expected in zip(stored, alone.images, strict=True):
            got = np.asarray(Image.open(io.BytesIO(store.get(image.uri))), dtype=np.int16)
            assert np.abs(got - np.asarray(expected, dtype=np.int16)).max() <= 1
