"""LoRA adapters stored in MinIO, through the real broker and worker: requests with different
adapters (and none) are served, each result names the adapters' URIs and sha256, and every bad
adapter fails its own request with INVALID_REQUEST naming it while the worker goes on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from diffusers import UNet2DConditionModel

from streamgen.contracts import dead_letter as dl
from streamgen.contracts.request import Adapter, GenerationRequest
from streamgen.settings import Settings
from streamgen.store import MinioStore, open_store
from tests.integration.worker.conftest import (
    all_committed,
    make_request,
    publish,
    read_dead_letters,
    read_results,
    wait_until,
    worker_thread,
)
from tests.support.lora import attention_layers, lora_bytes

pytestmark = pytest.mark.integration


def _put(store: object, key: str, data: bytes) -> str:
    assert isinstance(store, MinioStore)
    store.ensure_ready()
    content = "application/octet-stream"
    return store.put(key, data, index=0, content_type=content, metadata={}).uri


def _with(i: int, *adapters: Adapter) -> GenerationRequest:
    # One prompt and seed for all: only the adapters tell the images apart.
    return make_request(i, prompt="a product photo", seed=7, adapters=adapters)


def test_requests_with_adapters_from_minio_share_the_worker_and_bad_ones_fail_alone(
    worker_settings: Settings, tiny_model: Path
) -> None:
    unet = UNet2DConditionModel.from_pretrained(tiny_model / "unet")
    layers = attention_layers(unet)
    files = {
        "a": lora_bytes(unet, layers, seed=1),
        "b": lora_bytes(unet, layers[::2], seed=2, rank=2),
        "kohya": lora_bytes(unet, layers[:1], prefix="lora_unet_", seed=3),
        "other-model": lora_bytes(unet, layers[:1], seed=4).replace(b"unet.down", b"unet.xxxx"),
    }
    store = open_store(worker_settings.store)
    uris = {name: _put(store, f"adapters/{name}.safetensors", data) for name, data in files.items()}
    bucket = worker_settings.store.url
    good = [
        _with(0, Adapter(uris["a"], 1.0)),
        _with(1, Adapter(uris["b"], 0.5)),
        _with(2),
        _with(3, Adapter(uris["a"], 0.5), Adapter(uris["b"], 1.0)),
    ]
    bad = {
        "missing": _with(10, Adapter(f"{bucket}/adapters/missing.safetensors")),
        "kohya": _with(11, Adapter(uris["kohya"])),
        "other-model": _with(12, Adapter(uris["other-model"])),
        "outside": _with(13, Adapter("s3://elsewhere/a.safetensors")),
        "too-many": _with(14, *(Adapter(f"{bucket}/adapters/{i}") for i in range(5))),
    }
    publish(worker_settings, [*good, *bad.values()])
    with worker_thread(worker_settings) as worker:
        results = read_results(worker_settings, expected=len(good) + len(bad), timeout=240)
        dead = read_dead_letters(worker_settings, expected=len(bad))
        assert worker.thread.is_alive(), f"the worker exited: {worker.exit_code}"
        assert wait_until(lambda: all_committed(worker_settings), 30), "offsets not committed"
        assert worker.stop_and_wait() == 0
    by_id = {r.request_id: r for r in results}
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    recorded = [[(a.uri, a.sha256, a.scale) for a in by_id[r.request_id].adapters] for r in good]
    assert recorded == [
        [(uris["a"], sha["a"], 1.0)],
        [(uris["b"], sha["b"], 0.5)],
        [],
        [(uris["a"], sha["a"], 0.5), (uris["b"], sha["b"], 1.0)],
    ]
    assert all(by_id[r.request_id].status == "SUCCEEDED" for r in good)
    images = {by_id[r.request_id].images[0].sha256 for r in good}
    assert len(images) == len(good), "each adapter set gives its own image"
    why = {
        "missing": "adapters[0] '",
        "kohya": "kohya's format",
        "other-model": "which this model does not have",
        "outside": "adapters[0].uri='s3://elsewhere/a.safetensors' is invalid",
        "too-many": "at most 4 (validation.max_adapters_per_request)",
    }
    headers = {key.decode(): h for key, _, h in dead if key is not None}
    for name, asked in bad.items():
        result = by_id[asked.request_id]
        assert result.status == "FAILED" and result.error is not None, name
        assert result.error.code == "INVALID_REQUEST", (name, result.error)
        assert why[name] in result.error.message, (name, result.error.message)
        assert headers[asked.request_id][dl.H_RETRYABLE] == "false", name
    assert "does not exist" in by_id[bad["missing"].request_id].error.message  # type: ignore[union-attr]
