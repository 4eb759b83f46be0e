"""A request's own output format, end to end: `streamgen submit --output-format`, the real
broker, the worker with the tiny model on the CPU, MinIO. The stored object has the format's
extension and content type, the result records format and quality, and a bad format or
quality is a dead letter naming the field."""

from __future__ import annotations

import hashlib
import io
import uuid

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from streamgen.cli import main
from streamgen.settings import Settings
from streamgen.store import open_store
from streamgen.worker.storage import object_key
from tests.integration.worker.conftest import (
    make_request,
    publish,
    read_dead_letters,
    read_results,
    worker_thread,
)

pytestmark = pytest.mark.integration


def submit(settings: Settings, request_id: str, *flags: str) -> None:
    args = ["--bootstrap-servers", settings.kafka.bootstrap_servers]
    args += ["--topic", settings.topics.requests, "--request-id", request_id]
    args += ["--prompt", "a teapot", "--model", "tiny", "--width", "64", "--height", "64"]
    args += ["--steps", "2", "--seed", "7"]
    result = CliRunner().invoke(main, ["submit", *args, *flags])
    assert result.exit_code == 0, result.output


def test_each_request_gets_its_own_format_in_the_store_and_the_result(
    worker_settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:8]  # the bucket outlives the test's topics
    ids = {name: f"fmt-{run}-{name}" for name in ("jpeg", "webp", "lossless", "png", "gif", "q")}
    submit(worker_settings, ids["jpeg"], "--output-format", "jpeg", "--output-quality", "70")
    submit(worker_settings, ids["webp"], "--output-format", "webp", "--output-quality", "80")
    submit(worker_settings, ids["lossless"], "--output-format", "webp")
    submit(worker_settings, ids["png"])  # the worker's store.image_format: png
    bad = [
        make_request(1, request_id=ids["gif"], output_format="gif"),
        make_request(2, request_id=ids["q"], output_format="png", output_quality=50),
    ]
    publish(worker_settings, bad)
    with worker_thread(worker_settings) as worker:
        results = read_results(worker_settings, expected=6, timeout=120)
        dead = read_dead_letters(worker_settings, expected=2, timeout=30)
        assert worker.stop_and_wait() == 0

    by_id = {r.request_id: r for r in results}
    expected = {
        "jpeg": ("jpeg", 70, "jpg", "image/jpeg", "JPEG"),
        "webp": ("webp", 80, "webp", "image/webp", "WEBP"),
        "lossless": ("webp", None, "webp", "image/webp", "WEBP"),
        "png": ("png", None, "png", "image/png", "PNG"),
    }
    store = open_store(worker_settings.store)
    pixels = {}
    for case, (name, quality, extension, content_type, pillow) in expected.items():
        request_id = ids[case]
        result = by_id[request_id]
        assert result.status == "SUCCEEDED", result.error
        assert (result.output_format, result.output_quality) == (name, quality)
        [image] = result.images
        assert image.key.endswith(f"{request_id}/0.{extension}")
        assert image.content_type == content_type
        # What MinIO itself says about the object, not only what the result claims.
        on_store = store.stat(object_key(request_id, 0, extension))
        assert on_store is not None and on_store.content_type == content_type
        data = store.get(image.uri)
        assert hashlib.sha256(data).hexdigest() == image.sha256
        decoded = Image.open(io.BytesIO(data))
        assert decoded.format == pillow and decoded.size == (64, 64)
        pixels[case] = np.asarray(decoded.convert("RGB")).astype(int)
    # The same request (seed 7) stored losslessly twice: the same pixels, PNG or WebP.
    lossless = np.abs(pixels["lossless"] - pixels["png"]).max()
    assert lossless <= 2, f"lossless formats differ by {lossless}/255 (batch fp tolerance)"

    for case, field in (("gif", "output_format"), ("q", "output_quality")):
        failed = by_id[ids[case]]
        assert failed.status == "FAILED" and failed.output_format == ""
        assert failed.error is not None and failed.error.code == "INVALID_REQUEST"
        assert failed.error.message.startswith(f"{field}=")
    assert {key for key, _, _ in dead} == {ids["gif"].encode(), ids["q"].encode()}
