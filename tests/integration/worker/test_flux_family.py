"""The flux family end to end: the real worker serves FLUX.1 [dev] requests (tiny random
pipeline, CPU) beside an SD 1.5 model, over the real broker and MinIO; results record the
family and dtype; what FLUX cannot honour (a size off its multiple of 16, steps outside 28-50,
a negative prompt) is dead-lettered at the validate stage, naming the field, while the
requests polled with it are served."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from streamgen.contracts import dead_letter as dl
from streamgen.settings import Settings
from tests.integration.worker.conftest import (
    assert_stored_equals_alone,
    make_request,
    publish_and_serve,
    with_models,
)

pytestmark = pytest.mark.integration


def test_the_worker_serves_flux_beside_sd15(
    worker_settings: Settings, tiny_models: Callable[[str], Path]
) -> None:
    models = {**worker_settings.engine.models, "flux": str(tiny_models("tiny-flux-dev"))}
    settings = with_models(worker_settings, models)
    flux = {"model": "flux", "steps": 28, "guidance_scale": 3.5}
    requests = [
        make_request(0, **flux),
        make_request(1, **flux, width=96, num_images=2),
        make_request(2),  # sd15, in the same worker
    ]
    refused = make_request(3, **flux, negative_prompt="blurry")
    by_id, _ = publish_and_serve(settings, [*requests, refused], dead_letters=1)

    assert [by_id[r.request_id].status for r in requests] == ["SUCCEEDED"] * 3
    assert {(by_id[r.request_id].family, by_id[r.request_id].dtype) for r in requests[:2]} == {
        ("flux [dev]", "float32")
    }
    assert by_id[requests[2].request_id].family == "sd15"
    error = by_id[refused.request_id].error
    assert error is not None and error.code == "INVALID_REQUEST"
    assert error.message.startswith("negative_prompt=")
    assert_stored_equals_alone(settings, by_id, [requests[1]])


def test_what_flux_cannot_honour_is_dead_lettered_at_validate(
    worker_settings: Settings, tiny_models: Callable[[str], Path]
) -> None:
    """A request FLUX.1 [dev] cannot honour passes the fleet-wide checks (sizes a multiple of 8,
    1-150 steps), so only the rules of the model it names refuse it: at the validate stage,
    before it takes a place in a micro-batch, naming the field. The good requests polled with
    it are served."""
    settings = with_models(worker_settings, {"flux": str(tiny_models("tiny-flux-dev"))})
    flux = {"model": "flux", "steps": 28}
    good = [make_request(0, **flux), make_request(1, **flux, width=96)]
    bad = {  # the field each one gets wrong
        "width": make_request(10, **flux, width=72),
        "height": make_request(11, **flux, height=88),
        "steps": make_request(12, model="flux", steps=8),
        "negative_prompt": make_request(13, **flux, negative_prompt="blurry"),
    }
    by_id, dead = publish_and_serve(
        settings, [good[0], *bad.values(), good[1]], dead_letters=len(bad)
    )

    for request in good:
        assert (by_id[request.request_id].status, by_id[request.request_id].family) == (
            "SUCCEEDED",
            "flux [dev]",
        )
    headers = {key: h for key, _, h in dead}
    for field, request in bad.items():
        error = by_id[request.request_id].error
        assert error is not None, field
        assert (error.code, error.stage) == ("INVALID_REQUEST", "validate"), field
        assert error.message.startswith(f"{field}="), error.message
        assert "flux [dev]" in error.message
        dead_letter = headers[request.request_id.encode()]
        assert dead_letter[dl.H_STAGE] == "validate"
        assert dead_letter[dl.H_CODE] == "INVALID_REQUEST"
