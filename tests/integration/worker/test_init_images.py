"""img2img init images against the real broker and MinIO: a request reads only under the
allowed prefixes, at most ``store.init_image_max_bytes``; whatever it names, the worker goes on
(no exit, offsets committed), and a refusal never tells whether the object exists."""

from __future__ import annotations

import io
import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamgen.contracts import dead_letter as dl
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult
from streamgen.local.stack import LocalStack
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

pytestmark = pytest.mark.integration

REFUSAL = "is invalid: must be under one of the allowed prefixes: "
# The default store.init_image_max_bytes (20 MiB); the object below is one byte over it.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _img2img(i: int, uri: str) -> GenerationRequest:
    return make_request(i, task="img2img", init_image_uri=uri, strength=0.5)


def _put(store: object, key: str, data: bytes) -> str:
    assert isinstance(store, MinioStore)
    store.ensure_ready()
    meta: dict[str, str] = {}
    return store.put(key, data, index=0, content_type="image/png", metadata=meta).uri


def _assert_refused(message: str, uri: str, allowed: str) -> None:
    """The refusal names the URI (long ones shortened) and the allowed prefixes, nothing else."""
    value = message.removeprefix("init_image_uri='").removesuffix(f"' {REFUSAL}{allowed}")
    assert value != message and uri.startswith(value.removesuffix("...")), message


def _run(
    settings: Settings, good: list[GenerationRequest], bad: list[GenerationRequest]
) -> tuple[dict[str, GenerationResult], dict[str, dict[str, str]]]:
    """Publish good and bad requests interleaved; the worker must finish them all, commit
    every offset and still be running. Returns the results by id and dead-letter headers."""
    mixed: list[GenerationRequest] = []
    for i in range(max(len(good), len(bad))):
        mixed += good[i : i + 1] + bad[i : i + 1]
    publish(settings, mixed)
    with worker_thread(settings) as worker:
        results = read_results(settings, expected=len(good) + len(bad), timeout=180)
        dead = read_dead_letters(settings, expected=len(bad))
        assert worker.thread.is_alive(), f"the worker exited: {worker.exit_code}"
        assert wait_until(lambda: all_committed(settings), 30), "offsets not committed"
        assert worker.stop_and_wait() == 0
    by_id = {r.request_id: r for r in results}
    assert len(results) == len(good) + len(bad), "one result per request"
    assert {r.request_id for r in good} == {i for i, r in by_id.items() if r.status == "SUCCEEDED"}
    assert len(dead) == len(bad)
    headers = {key.decode(): h for key, _, h in dead if key is not None}
    return by_id, headers


def test_an_s3_worker_refuses_every_init_image_outside_its_store_and_goes_on(
    worker_settings: Settings,
) -> None:
    store = open_store(worker_settings.store)
    bucket = worker_settings.store.url.removeprefix("s3://")
    cat = _put(store, "inputs/cat.png", _png(1))
    oversize = _put(store, "inputs/huge.png", os.urandom(DEFAULT_MAX_BYTES + 1))
    # Another bucket the worker's credentials can read, holding a real image.
    other = f"secret-{uuid.uuid4().hex[:12]}"
    secret_store = replace(worker_settings.store, url=f"s3://{other}")
    secret = _put(open_store(secret_store), "secret.png", _png(2))
    outsiders = {
        "etc-passwd": "file:///etc/passwd",
        "foreign-bucket": secret,
        "foreign-missing": f"s3://{other}/missing.png",
        "http": "http://example/x.png",
        "dot-dot": f"s3://{bucket}/inputs/../../{other}/secret.png",
        "encoded-dot-dot": f"s3://{bucket}/inputs/%2e%2e/%2e%2e/{other}/secret.png",
    }
    bad = {name: _img2img(10 + i, uri) for i, (name, uri) in enumerate(outsiders.items())}
    bad["oversize"] = _img2img(20, oversize)
    good = [make_request(0), _img2img(1, cat), make_request(2)]

    by_id, headers = _run(worker_settings, good, list(bad.values()))

    for name, uri in outsiders.items():
        request_id = bad[name].request_id
        error = by_id[request_id].error
        assert error is not None and by_id[request_id].status == "FAILED", name
        # One message whatever the object: present, missing, or not an object at all.
        _assert_refused(error.message, uri, f"s3://{bucket}")
        assert headers[request_id][dl.H_STAGE] == "validate", name
        assert headers[request_id][dl.H_MESSAGE] == error.message
    huge = by_id[bad["oversize"].request_id].error
    assert huge is not None and huge.code == "INIT_IMAGE_INVALID"
    assert f"store.init_image_max_bytes={DEFAULT_MAX_BYTES} bytes" in huge.message


def test_a_file_worker_refuses_symlinks_that_lead_outside_its_store(
    worker_settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "images"
    (root / "inputs").mkdir(parents=True)
    (root / "inputs" / "cat.png").write_bytes(_png(1))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.png").write_bytes(_png(2))
    (root / "inputs" / "link.png").symlink_to(tmp_path / "outside" / "secret.png")
    (root / "inputs" / "missing-link.png").symlink_to(tmp_path / "outside" / "missing.png")
    (root / "inputs" / "dir-link").symlink_to(tmp_path / "outside")
    (root / "inputs" / "cat-link.png").symlink_to(root / "inputs" / "cat.png")  # stays inside
    settings = replace(worker_settings, store=replace(worker_settings.store, url=f"file://{root}"))
    links = {
        "file-link": (root / "inputs" / "link.png").as_uri(),
        "missing-link": (root / "inputs" / "missing-link.png").as_uri(),
        "dir-link": (root / "inputs" / "dir-link" / "secret.png").as_uri(),
    }
    bad = {name: _img2img(10 + i, uri) for i, (name, uri) in enumerate(links.items())}
    escape = _img2img(20, f"{root.as_uri()}/inputs/../../outside/secret.png")
    good = [
        _img2img(0, (root / "inputs" / "cat.png").as_uri()),
        _img2img(1, (root / "inputs" / "cat-link.png").as_uri()),
        make_request(2),
    ]

    by_id, headers = _run(settings, good, [*bad.values(), escape])

    for name, uri in links.items():
        request_id = bad[name].request_id
        error = by_id[request_id].error
        assert error is not None, name
        _assert_refused(error.message, uri, f"file://{root}")
        assert headers[request_id][dl.H_RETRYABLE] == "false"
    assert headers[escape.request_id][dl.H_STAGE] == "validate"


def test_an_init_image_unreadable_during_a_store_outage_waits_for_the_store(
    stack: LocalStack, worker_settings: Settings
) -> None:
    store = open_store(worker_settings.store)
    cat = _put(store, "inputs/cat.png", _png(1))
    with worker_thread(worker_settings) as worker:
        publish(worker_settings, [make_request(0)])
        assert len(read_results(worker_settings, expected=1, timeout=60)) == 1
        stack.stop_minio()
        try:
            publish(worker_settings, [_img2img(1, cat)])
            time.sleep(6)  # several retries of the init image happen in this window
            assert worker.thread.is_alive(), f"the worker exited: {worker.exit_code}"
            assert len(read_results(worker_settings, timeout=2)) == 1, "no result without images"
            assert read_dead_letters(worker_settings, timeout=1) == []
        finally:
            stack.start_minio()
        results = read_results(worker_settings, expected=2, timeout=120)
        assert wait_until(lambda: all_committed(worker_settings), 30)
        assert worker.stop_and_wait() == 0
    assert [r.status for r in results] == ["SUCCEEDED", "SUCCEEDED"]
