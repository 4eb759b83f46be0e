"""The flux2 family end to end: the real worker serves FLUX.2 [klein] requests (tiny random
pipeline, CPU) over the real broker and MinIO; results record the family and dtype; what the
distilled model cannot honour (a negative prompt, steps other than 4) is dead-lettered, naming
the field; the stored image equals the engine's image of the request alone."""

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


def test_the_worker_serves_flux2_klein(
    worker_settings: Settings, tiny_models: Callable[[str], Path]
) -> None:
    settings = with_models(worker_settings, {"klein": str(tiny_models("tiny-flux2-klein"))})
    klein = {"model": "klein", "steps": 4, "guidance_scale": 0.0}
    requests = [
        make_request(0, **klein),
        make_request(1, **klein, width=96, height=64, num_images=2),
    ]
    refused = [
        make_request(2, **klein, negative_prompt="blurry"),
        make_request(3, **{**klein, "steps": 8}),
    ]
    by_id, _ = publish_and_serve(settings, [*requests, *refused], dead_letters=2)

    assert [by_id[r.request_id].status for r in requests] == ["SUCCEEDED"] * 2
    assert {(by_id[r.request_id].family, by_id[r.request_id].dtype) for r in requests} == {
        ("flux2 [klein]", "float32")
    }
    for request, field in zip(refused, ("negative_prompt=", "steps="), strict=True):
        error = by_id[request.request_id].error
        assert error is not None and error.code == "INVALID_REQUEST"
        assert error.message.startswith(field)
    assert_stored_equals_alone(settings, by_id, [requests[1]])
