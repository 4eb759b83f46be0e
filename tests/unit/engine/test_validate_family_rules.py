"""The validate stage applies the rules of the model a request names (``LoadedModelRules``, taken
from the engine once it has loaded its models): a request the family cannot honour is refused
there, naming the field, before it takes a place in a batch; and a request validate accepts is
never refused by its family when the engine generates it.

The rules are the real ones: every family's tiny pipeline (and every preset) loaded on the CPU.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import LoadedModelRules, validate
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.families import TINY_ARCHS
from streamgen.engine.families.sdxl_presets import PRESETS
from streamgen.engine.model_init import write_model
from streamgen.engine.requests import reject_reason
from streamgen.engine.schedulers import SCHEDULERS
from streamgen.errors import InvalidRequest
from streamgen.settings import EngineSettings, ValidationBounds

NOW = datetime(2030, 1, 1, tzinfo=UTC)
BOUNDS = ValidationBounds()
INIT_IMAGE = "s3://images/in/cat.png"


@pytest.fixture(scope="module")
def every_family(tmp_path_factory: pytest.TempPathFactory) -> DiffusionEngine:
    """One engine serving every family's tiny pipeline, named by variant (sd15, sdxl, dev,
    schnell, large, medium, klein), and every preset (turbo, lightning-*, dmd2, large-turbo)."""
    root = tmp_path_factory.mktemp("families")
    models: dict[str, str] = {}
    for variants in TINY_ARCHS.values():
        for variant, arch in variants.items():
            models[variant] = str(write_model(arch, root / arch))
    models |= {preset: f"{models['sdxl']}#{preset}" for preset in PRESETS}
    models["large-turbo"] = f"{models['large']}#large-turbo"
    return DiffusionEngine(EngineSettings(models=models, device="cpu"))


def check(request: GenerationRequest, model_rules: LoadedModelRules | None) -> GenerationRequest:
    models = {*model_rules.by_model} if model_rules is not None else None
    return validate(
        request,
        BOUNDS,
        models=models,
        schedulers=SCHEDULERS,
        now=NOW,
        model_rules=model_rules,
    )


def a_request(model: str, **fields: Any) -> GenerationRequest:
    base: dict[str, Any] = {"prompt": "a teapot", "model": model, "width": 64, "height": 64}
    return GenerationRequest(request_id="r-1", **{**base, **fields})


# (model, fields the family cannot honour, the field validate names, words of the allowed range)
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    ("dev", {"width": 72, "steps": 28}, "width", "multiple of 16 for flux [dev]"),
    ("dev", {"height": 88, "steps": 28}, "height", "multiple of 16"),
    ("dev", {"steps": 20}, "steps", "at least 28, at most 50 for flux [dev]"),
    ("dev", {"steps": 28, "negative_prompt": "blurry"}, "negative_prompt", "must be empty"),
    ("schnell", {"steps": 4, "guidance_scale": 3.5}, "guidance_scale", "no guidance input"),
    ("schnell", {"steps": 8}, "steps", "at most 4"),
    ("klein", {"steps": 4, "guidance_scale": 4.0}, "guidance_scale", "flux2 [klein]"),
    ("klein", {"steps": 4, "negative_prompt": "ugly"}, "negative_prompt", "must be empty"),
    ("klein", {"steps": 3}, "steps", "at least 4, at most 4"),
    ("large", {"width": 520}, "width", "multiple of 16 up to 512 for sd3 [large]"),
    ("large", {"width": 528}, "width", "up to 512"),
    ("klein", {"steps": 4, "task": "img2img", "init_image_uri": INIT_IMAGE}, "task", "txt2img"),
    (
        "large-turbo",
        {"steps": 4, "task": "img2img", "init_image_uri": INIT_IMAGE},
        "task",
        "txt2img",
    ),
    ("turbo", {"steps": 2, "task": "img2img", "init_image_uri": INIT_IMAGE}, "task", "txt2img"),
    ("large-turbo", {"steps": 4, "negative_prompt": "x"}, "negative_prompt", "must be empty"),
    ("turbo", {"steps": 2, "scheduler": "euler"}, "scheduler", "one of euler_a"),
    ("lightning-4step", {"steps": 8, "guidance_scale": 0.0}, "steps", "at most 4"),
    ("dmd2", {"steps": 4, "guidance_scale": 5.0}, "guidance_scale", "no guidance input"),
]


@pytest.mark.parametrize(("model", "fields", "field", "allowed"), REFUSED)
def test_validate_refuses_what_the_named_model_cannot_honour(
    every_family: DiffusionEngine, model: str, fields: dict[str, Any], field: str, allowed: str
) -> None:
    request = a_request(model, **fields)
    assert check(request, None) is request  # the fleet-wide rules alone let it through
    with pytest.raises(InvalidRequest) as refused:
        check(request, every_family.model_rules())
    assert (refused.value.field, refused.value.stage) == (field, "validate")
    assert allowed in refused.value.allowed


def test_the_same_fields_pass_on_a_model_that_can_honour_them(
    every_family: DiffusionEngine,
) -> None:
    rules = every_family.model_rules()
    for request in [
        a_request("sd15", width=72, height=88, steps=20, negative_prompt="blurry"),
        a_request("default", width=72, task="img2img", init_image_uri=INIT_IMAGE),
        a_request("dev", width=96, steps=28, guidance_scale=3.5),
        # No scheduler named: the fleet's default (dpmpp_2m) is not a flow-matching scheduler,
        # so these run with their family's own, as the engine's shape says.
        a_request("schnell", steps=4),
        a_request("klein", steps=4, guidance_scale=0.0),
        a_request("large", width=512, negative_prompt="blurry"),
        # img2img on the flow-matching families, as their stock img2img pipelines.
        a_request("dev", steps=28, task="img2img", init_image_uri=INIT_IMAGE),
        a_request("schnell", steps=4, task="img2img", init_image_uri=INIT_IMAGE),
        a_request("medium", task="img2img", init_image_uri=INIT_IMAGE, negative_prompt="dull"),
        a_request("turbo", steps=2, guidance_scale=0.0),
    ]:
        assert check(request, rules) is request
    assert every_family.shape_of(a_request("schnell", steps=4)).scheduler == "euler"


def test_a_model_the_worker_does_not_serve_is_named_as_the_model(
    every_family: DiffusionEngine,
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check(a_request("sd9", width=72), every_family.model_rules())
    assert refused.value.field == "model"


NAMES = [
    *(variant for variants in TINY_ARCHS.values() for variant in variants),
    *PRESETS,
    "large-turbo",
    "default",
]


@st.composite
def requests(draw: st.DrawFn) -> GenerationRequest:
    """Requests near every family's edges: sizes on and off multiples of 8 and 16 and past
    SD3's 512, steps around 1-4, 8, 28-50, guidance at 0, the default and other values."""
    task = draw(st.sampled_from(["txt2img", "img2img"]))
    return GenerationRequest(
        request_id="r-1",
        prompt="a teapot",
        model=draw(st.sampled_from(NAMES)),
        task=task,
        init_image_uri=INIT_IMAGE if task == "img2img" else None,
        negative_prompt=draw(st.sampled_from(["", "blurry"])),
        width=draw(st.integers(8, 66).map(lambda n: n * 8) | st.integers(60, 530)),
        height=draw(st.integers(8, 66).map(lambda n: n * 8)),
        steps=draw(st.integers(0, 9) | st.integers(26, 52)),
        guidance_scale=draw(st.sampled_from([0.0, 1.0, 3.5, 7.5]) | st.floats(0, 31)),
        scheduler=draw(st.none() | st.sampled_from(sorted(SCHEDULERS))),
        num_images=draw(st.integers(1, 2)),
    )


@settings(max_examples=400, deadline=None)
@given(request=requests())
def test_a_request_validate_accepts_is_never_refused_by_its_family_at_generate(
    every_family: DiffusionEngine, request: GenerationRequest
) -> None:
    rules = every_family.model_rules()
    parts = {name: every_family.parts(name) for name in rules.by_model}
    # What the engine refuses at generate, before any denoising: the family's rules among them.
    at_generate = reject_reason(request, every_family.shape_of(request), parts, None)
    try:
        check(request, None)
    except InvalidRequest:
        fleet_refused = True
    else:
        fleet_refused = False
    try:
        check(request, rules)
    except InvalidRequest as refused:
        assert refused.stage == "validate"
        if not fleet_refused:  # the family refused it: at validate, naming the engine's field
            assert at_generate is not None
            assert str(at_generate).startswith(f"{refused.field}=")
    else:
        assert at_generate is None, f"validate accepted {request}, generate said {at_generate}"
