"""The sd3 family end to end: the real worker serves SD3.5 requests (tiny random pipeline, CPU)
over the real broker and MinIO: Large with CFG and a negative prompt, and the same weights as
Large Turbo through the model mapping's preset (``#large-turbo``); results record the variant
and dtype; a negative prompt Turbo cannot honour is refused, naming the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from streamgen.settings import Settings
from tests.integration.worker.conftest import (
    assert_stored_equals_alone,
    make_request,
    publish_and_serve,
    with_models,
)

pytestmark = pytest.mark.integration


def test_the_worker_serves_sd3_and_its_turbo_preset(
    worker_settings: Settings, tiny_models: Callable[[str], Path]
) -> None:
    sd3 = tiny_models("tiny-sd3-large")
    settings = with_models(worker_settings, {"sd3": str(sd3), "turbo": f"{sd3}#large-turbo"})
    large = {"model": "sd3", "steps": 6, "guidance_scale": 4.5}
    turbo = {"model": "turbo", "steps": 4, "guidance_scale": 0.0}
    requests = [
        make_request(0, **large, negative_prompt="blurry"),
        make_request(1, **large, width=96, num_images=2),
        make_request(2, **turbo),
    ]
    refused = make_request(3, **turbo, negative_prompt="blurry")
    by_id, _ = publish_and_serve(settings, [*requests, refused], dead_letters=1)

    assert [by_id[r.request_id].status for r in requests] == ["SUCCEEDED"] * 3
    assert [(by_id[r.request_id].family, by_id[r.request_id].dtype) for r in requests] == [
        ("sd3 [large]", "float32"),
        ("sd3 [large]", "float32"),
        ("sd3 [large-turbo]", "float32"),
    ]
    error = by_id[refused.request_id].error
    assert error is not None and error.code == "INVALID_REQUEST"
    assert error.message.startswith("negative_prompt=")
    assert_stored_equals_alone(settings, by_id, [requests[1], requests[2]])
