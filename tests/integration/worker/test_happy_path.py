"""The main job end to end: real broker, real MinIO, the tiny model on the CPU."""

from __future__ import annotations

import hashlib
import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from streamgen.engine import DiffusionEngine
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


def test_mixed_shapes_all_succeed_with_stored_images_and_offsets_committed(
    worker_settings: Settings,
) -> None:
    requests = [
        make_request(0),
        make_request(1, width=96, height=64),
        make_request(2, steps=3, scheduler="euler_a"),
        make_request(3, num_images=2, guidance_scale=3.0),
        make_request(4, seed=None, metadata={"product_id": "sku-42"}),
        make_request(5, width=96, height=64, negative_prompt="blurry"),
    ]
    publish(worker_settings, requests)
    with worker_thread(worker_settings) as worker:
        results = read_results(worker_settings, expected=len(requests), timeout=120)
        assert wait_until(lambda: all_committed(worker_settings), 20)
        assert worker.stop_and_wait() == 0

    by_id = {r.request_id: r for r in results}
    assert set(by_id) == {r.request_id for r in requests}
    assert all(r.status == "SUCCEEDED" for r in results)
    store = open_store(worker_settings.store)
    for request in requests:
        result = by_id[request.request_id]
        assert len(result.images) == request.num_images
        assert (result.width, result.height) == (request.width, request.height)
        assert result.metadata == request.metadata
        assert result.seed is not None
        if request.seed is not None:
            assert result.seed == request.seed
        for image in result.images:
            data = store.get(image.uri)
            assert hashlib.sha256(data).hexdigest() == image.sha256
            assert len(data) == image.size_bytes
            assert Image.open(io.BytesIO(data)).size == (request.width, request.height)
    assert read_dead_letters(worker_settings, timeout=2) == []


def test_a_burst_is_batched_and_batched_images_equal_images_made_alone(
    worker_settings: Settings,
) -> None:
    requests = [make_request(i, guidance_scale=2.0 + i) for i in range(8)]
    publish(worker_settings, requests)
    with worker_thread(worker_settings) as worker:
        results = read_results(worker_settings, expected=len(requests), timeout=120)
        worker.stop_and_wait()

    sizes = [r.timings.batch_size for r in results]
    assert sum(sizes) / len(sizes) > 1, f"no batching happened: {Counter(sizes)}"
    store = open_store(worker_settings.store)
    engine = DiffusionEngine(worker_settings.engine)
    by_id = {r.request_id: r for r in results}
    for request in requests[:3]:
        [alone] = engine.generate([request])
        assert alone.error is None
        batched = np.asarray(
            Image.open(io.BytesIO(store.get(by_id[request.request_id].images[0].uri)))
        )
        single = np.asarray(alone.images[0].convert("RGB"))
        diff = np.abs(batched.astype(int) - single.astype(int)).max()
        assert diff <= 2, f"{request.request_id}: batched differs from alone by {diff}/255"
