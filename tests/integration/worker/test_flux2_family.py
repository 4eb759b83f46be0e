"""The flux2 family end to end: the real worker serves FLUX.2 [klein] requests (tiny random
pipeline, CPU) over the real broker and MinIO; results record the family and dtype; what the
distilled model cannot honour (a negative prompt, steps other than 4) is dead-lettered, naming
the field; the stored image equals the engine's image of the request alone."""

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
def tiny_klein(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model("tiny-flux2-klein", tmp_path_factory.mktemp("models") / "klein")


def test_the_worker_serves_flux2_klein(worker_settings: Settings, tiny_klein: Path) -> None:
    engine_settings = replace(worker_settings.engine, models={"klein": str(tiny_klein)})
    settings = replace(worker_settings, engine=engine_settings)
    klein = {"model": "klein", "steps": 4, "guidance_scale": 0.0}
    requests = [
        make_request(0, **klein),
        make_request(1, **klein, width=96, height=64, num_images=2),
    ]
    refused = [
        make_request(2, **klein, negative_prompt="blurry"),
        make_request(3, **{**klein, "steps": 8}),
    ]
    publish(settings, [*requests, *refused])
    with worker_thread(settings) as worker:
        results = read_results(settings, expected=4, timeout=180)
        dead = read_dead_letters(settings, expected=2)
        assert wait_until(lambda: all_committed(settings), 20)
        assert worker.stop_and_wait() == 0

    by_id = {r.request_id: r for r in results}
    assert [by_id[r.request_id].status for r in requests] == ["SUCCEEDED"] * 2
    assert {(by_id[r.request_id].family, by_id[r.request_id].dtype) for r in requests} == {
        ("flux2 [klein]", "float32")
    }
    for request, field in zip(refused, ("negative_prompt=", "steps="), strict=True):
        error = by_id[request.request_id].error
        assert error is not None and error.code == "INVALID_REQUEST"
        assert error.message.startswith(field)
    assert len(dead) == 2
    # What the worker stored is what the engine makes of the request alone.
    store = open_store(settings.store)
    alone = DiffusionEngine(engine_settings).generate([requests[1]])[0]
    for stored, image in zip(by_id[requests[1].request_id].images, alone.images, strict=True):
        got = np.asarray(Image.open(io.BytesIO(store.get(stored.uri))), dtype=np.int16)
        assert got.shape == (64, 96, 3)
        assert np.abs(got - np.asarray(image, dtype=np.int16)).max() <= 1
