"""Request validation: every invalid field is named with its value and the allowed range."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.contracts.request import Adapter, GenerationRequest, Task
from streamgen.contracts.validation import MAX_SEED, deadline_expired, validate
from streamgen.errors import DeadlineExpired, InvalidRequest, RequestCancelled
from streamgen.settings import StoreSettings, ValidationBounds
from streamgen.store.prefixes import AllowedPrefixes

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
BOUNDS = ValidationBounds()
MODELS = {"default", "sd15"}
SCHEDULERS = {"ddim", "euler_a"}


def check(
    request: GenerationRequest,
    bounds: ValidationBounds = BOUNDS,
    *,
    init_images: AllowedPrefixes | None = None,
) -> GenerationRequest:
    return validate(
        request, bounds, models=MODELS, schedulers=SCHEDULERS, now=NOW, init_images=init_images
    )


def a_request(**changes: Any) -> GenerationRequest:
    return GenerationRequest(request_id="req-1", prompt="a blue teapot").replace(**changes)


def rejected(request: GenerationRequest, bounds: ValidationBounds = BOUNDS) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        check(request, bounds)
    return caught.value


def test_a_default_request_passes_unchanged() -> None:
    request = a_request()
    assert check(request) is request


INVALID: list[tuple[dict[str, Any], str, str]] = [
    # (changes, field named, text of the allowed range)
    ({"request_id": ""}, "request_id", "1..128 characters"),
    ({"request_id": "x" * 129}, "request_id", "1..128 characters"),
    ({"request_id": "a/b"}, "request_id", "A-Z a-z 0-9 . _ -"),
    ({"request_id": "..."}, "request_id", "not only dots"),
    ({"request_id": "naïve"}, "request_id", "A-Z a-z 0-9"),
    ({"prompt": ""}, "prompt", "non-whitespace"),
    ({"prompt": " \t\n"}, "prompt", "non-whitespace"),
    ({"prompt": "p" * 2001}, "prompt", "at most 2000 characters (got 2001)"),
    ({"negative_prompt": "n" * 2001}, "negative_prompt", "at most 2000 characters"),
    ({"model": "sdxl"}, "model", "one of default, sd15"),
    ({"scheduler": "plms"}, "scheduler", "one of ddim, euler_a, or null"),
    ({"task": "inpaint"}, "task", "one of txt2img, img2img"),
    ({"task": "img2img"}, "init_image_uri", "required when task is img2img"),
    ({"task": "img2img", "init_image_uri": "  "}, "init_image_uri", "required"),
    ({"init_image_uri": "s3://b/k"}, "init_image_uri", "must be null when task is txt2img"),
    ({"strength": 0.0}, "strength", "in (0, 1]"),
    ({"strength": 1.5}, "strength", "in (0, 1]"),
    ({"strength": math.nan}, "strength", "a finite number"),
    ({"width": 500}, "width", "a multiple of 8 in [64, 2048]"),
    ({"width": 56}, "width", "a multiple of 8 in [64, 2048]"),
    ({"height": 4096}, "height", "a multiple of 8 in [64, 2048]"),
    ({"height": 512.0}, "height", "an integer"),
    ({"steps": 0}, "steps", "in [1, 150]"),
    ({"steps": 151}, "steps", "in [1, 150]"),
    ({"guidance_scale": -0.5}, "guidance_scale", "in [0.0, 30.0]"),
    ({"guidance_scale": 31.0}, "guidance_scale", "in [0.0, 30.0]"),
    ({"guidance_scale": math.inf}, "guidance_scale", "a finite number"),
    ({"guidance_scale": math.nan}, "guidance_scale", "a finite number"),
    ({"num_images": 0}, "num_images", "in [1, 8]"),
    ({"num_images": 9}, "num_images", "in [1, 8]"),
    ({"num_images": True}, "num_images", "an integer"),
    ({"seed": -1}, "seed", f"in [0, {MAX_SEED}]"),
    ({"seed": MAX_SEED, "num_images": 2}, "seed", f"in [0, {MAX_SEED - 1}]"),
    ({"priority": "high"}, "priority", "an integer"),
    ({"created_at": datetime(2030, 1, 1)}, "created_at", "timezone-aware"),
    ({"metadata": {f"k{i}": "v" for i in range(65)}}, "metadata", "at most 64 entries"),
    ({"metadata": {"k": 1}}, "metadata['k']", "string keys and string values"),
    ({"output_format": "gif"}, "output_format", "one of png, jpeg, webp, or null"),
    ({"output_format": "PNG"}, "output_format", "one of png, jpeg, webp, or null"),
    ({"output_format": "png", "output_quality": 90}, "output_quality", "null for png"),
    ({"output_format": "jpeg", "output_quality": 0}, "output_quality", "in [1, 100] for jpeg"),
    ({"output_format": "webp", "output_quality": 101}, "output_quality", "in [1, 100] for webp"),
    ({"output_format": "jpeg", "output_quality": True}, "output_quality", "an integer"),
    ({"output_quality": 80}, "output_quality", "null unless output_format is set"),
]


@pytest.mark.parametrize(("changes", "field", "allowed"), INVALID, ids=[i[1] for i in INVALID])
def test_every_invalid_field_is_named_with_value_and_range(
    changes: dict[str, Any], field: str, allowed: str
) -> None:
    error = rejected(a_request(**changes))
    assert error.field == field
    assert allowed in error.allowed
    assert str(error).startswith(f"{field}=")
    assert error.code == "INVALID_REQUEST"
    assert error.stage == "validate"


@pytest.mark.parametrize(
    ("output_format", "quality"),
    [(None, None), ("png", None), ("jpeg", None), ("jpeg", 1), ("webp", None), ("webp", 100)],
)
def test_every_output_format_and_quality_in_range_passes(
    output_format: str | None, quality: int | None
) -> None:
    request = a_request(output_format=output_format, output_quality=quality)
    assert check(request) is request


def test_pixel_budget_is_checked_after_each_side() -> None:
    bounds = ValidationBounds(max_pixels=512 * 512)
    error = rejected(a_request(width=1024, height=512), bounds)
    assert error.field == "width*height"
    assert error.value == "1024x512=524288"
    assert error.allowed == "at most 262144 pixels"


def test_deadline_already_past_is_deadline_expired() -> None:
    error = rejected(a_request(deadline=NOW - timedelta(milliseconds=1)))
    assert isinstance(error, DeadlineExpired)
    assert error.code == "DEADLINE_EXPIRED"
    assert error.field == "deadline"
    assert "2030-06-01T11:59:59.999000+00:00" in str(error)
    assert rejected(a_request(deadline=NOW)).code == "DEADLINE_EXPIRED"
    assert error.stage == "validate"


def test_one_deadline_check_serves_every_stage() -> None:
    late = a_request(deadline=NOW)
    expired = deadline_expired(late, NOW, stage="generate")
    assert isinstance(expired, DeadlineExpired) and expired.stage == "generate"
    # Also a RequestCancelled: the engine drops it from a batch like a cancelled request.
    assert isinstance(expired, RequestCancelled) and not expired.retryable
    assert deadline_expired(late, NOW - timedelta(microseconds=1)) is None
    assert deadline_expired(a_request(deadline=None), NOW) is None


def test_deadline_in_the_future_passes() -> None:
    check(a_request(deadline=NOW + timedelta(seconds=1)))


def test_naive_deadline_is_invalid_not_a_type_error() -> None:
    error = rejected(a_request(deadline=datetime(2031, 1, 1)))
    assert error.field == "deadline"
    assert not isinstance(error, DeadlineExpired)


def test_long_prompt_is_clipped_in_the_message() -> None:
    error = rejected(a_request(prompt="p" * 5000))
    assert len(str(error)) < 200


def test_unknown_model_and_scheduler_are_not_checked_when_names_are_unknown() -> None:
    request = a_request(model="anything", scheduler="whatever")
    assert validate(request, BOUNDS, models=None, schedulers=None, now=NOW) is request


def test_empty_model_list_says_none_are_configured() -> None:
    with pytest.raises(InvalidRequest, match=r"one of \(none configured\)"):
        validate(a_request(), BOUNDS, models=(), schedulers=None, now=NOW)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate(a_request(), BOUNDS, models=None, schedulers=None, now=datetime(2030, 1, 1))


def test_bounds_come_from_settings() -> None:
    tight = ValidationBounds(max_size=256, max_steps=10, max_num_images=2, max_prompt_chars=20)
    small = a_request(width=256, height=256, steps=10)
    assert rejected(small.replace(width=512), tight).allowed == "a multiple of 8 in [64, 256]"
    assert rejected(small.replace(steps=11), tight).allowed == "in [1, 10]"
    assert rejected(small.replace(num_images=3), tight).allowed == "in [1, 2]"
    assert rejected(small.replace(prompt="p" * 21), tight).field == "prompt"
    assert check(small, tight) is small


TASKS: list[Task] = ["txt2img", "img2img"]
SIZES = st.integers(8, 256).map(lambda n: n * 8)


@st.composite
def valid_requests(draw: st.DrawFn) -> GenerationRequest:
    task: Task = draw(st.sampled_from(TASKS))
    num_images = draw(st.integers(1, BOUNDS.max_num_images))
    return GenerationRequest(
        request_id=draw(st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}", fullmatch=True)),
        prompt=draw(st.text(min_size=1, max_size=200).filter(str.strip)),
        negative_prompt=draw(st.text(max_size=200)),
        model=draw(st.sampled_from(sorted(MODELS))),
        task=task,
        init_image_uri="s3://bucket/init.png" if task == "img2img" else None,
        strength=draw(st.floats(0.0, 1.0, exclude_min=True)),
        width=draw(SIZES),
        height=draw(SIZES),
        steps=draw(st.integers(BOUNDS.min_steps, BOUNDS.max_steps)),
        guidance_scale=draw(st.floats(BOUNDS.min_guidance, BOUNDS.max_guidance)),
        seed=draw(st.none() | st.integers(0, MAX_SEED - num_images + 1)),
        num_images=num_images,
        scheduler=draw(st.none() | st.sampled_from(sorted(SCHEDULERS))),
        deadline=draw(st.none() | st.just(NOW + timedelta(seconds=1))),
        priority=draw(st.integers(-(2**31), 2**31 - 1)),
        metadata=draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=64)),
        created_at=draw(st.none() | st.just(NOW)),
    )


@given(valid_requests())
def test_valid_requests_pass_unchanged(request: GenerationRequest) -> None:
    assert check(request) is request


def test_img2img_reads_only_under_the_allowed_prefixes() -> None:
    allowed = AllowedPrefixes.from_settings(StoreSettings(url="s3://images/in"))
    inside = a_request(task="img2img", init_image_uri="s3://images/in/cat.png")
    assert check(inside, init_images=allowed) is inside
    for uri in ("s3://images/in-secret/cat.png", "s3://images/in/../x.png", "file:///etc/passwd"):
        with pytest.raises(InvalidRequest, match="must be under one of the allowed prefixes"):
            check(inside.replace(init_image_uri=uri), init_images=allowed)


ADAPTERS = AllowedPrefixes.from_settings(StoreSettings(url="s3://images/in"))


def test_adapters_under_the_allowed_prefixes_within_the_limits_pass() -> None:
    asked = a_request(
        adapters=(Adapter("s3://images/in/a.safetensors", -4.0), Adapter("s3://images/in/b", 4.0))
    )
    assert check(asked, init_images=ADAPTERS) is asked


@pytest.mark.parametrize(
    ("adapters", "field", "why"),
    [
        (
            tuple(Adapter(f"s3://images/in/{i}") for i in range(5)),
            "adapters",
            "at most 4 (validation.max_adapters_per_request)",
        ),
        ((Adapter("s3://images/in-secret/a"),), "adapters[0].uri", "allowed prefixes"),
        (
            (Adapter("s3://images/in/a"), Adapter("file:///etc/passwd")),
            "adapters[1].uri",
            "allowed",
        ),
        ((Adapter(""),), "adapters[0].uri", "a non-empty object URI"),
        ((Adapter("s3://images/in/a", math.nan),), "adapters[0].scale", "a finite number"),
        ((Adapter("s3://images/in/a", math.inf),), "adapters[0].scale", "a finite number"),
        ((Adapter("s3://images/in/a", 4.5),), "adapters[0].scale", "in [-4.0, 4.0]"),
        ((Adapter("s3://images/in/a", "1"),), "adapters[0].scale", "a number"),  # type: ignore[arg-type]
        ((Adapter("s3://images/in/a"),) * 2, "adapters[1].uri", "named once per request"),
        # Other spellings of one object are the same adapter (its scale would otherwise add up).
        *(
            (
                (Adapter("s3://images/in/a", 4.0), Adapter(alias, 4.0)),
                "adapters[1].uri",
                "named once per request (s3://images/in/a)",
            )
            for alias in (
                "s3://images//in/a",
                "s3://images/in/./a",
                "s3://images/x/../in/a",
                "s3://images/%69n/a",
            )
        ),
        (("s3://images/in/a",), "adapters[0]", "a {uri, scale} record"),
    ],
)
def test_every_bad_adapter_is_named_with_why(adapters: Any, field: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check(a_request(adapters=adapters), init_images=ADAPTERS)
    assert caught.value.field == field
    assert why in caught.value.allowed


def test_adapter_records_from_json_or_avro_become_adapters() -> None:
    asked = a_request(
        adapters=[{"uri": "s3://images/in/a"}, {"uri": "s3://images/in/b", "scale": 0.5}]
    )
    assert asked.adapters == (Adapter("s3://images/in/a"), Adapter("s3://images/in/b", 0.5))
    assert asked.to_record()["adapters"] == [
        {"uri": "s3://images/in/a", "scale": 1.0},
        {"uri": "s3://images/in/b", "scale": 0.5},
    ]


def test_the_adapter_limit_comes_from_settings() -> None:
    none_allowed = ValidationBounds(max_adapters_per_request=0)
    error = rejected(a_request(adapters=(Adapter("s3://images/in/a"),)), none_allowed)
    assert (
        error.allowed == "none: this fleet serves no adapters (validation.max_adapters_per_request)"
    )
    assert error.value == "1 adapter"
    two = ValidationBounds(max_adapters_per_request=2)
    error = rejected(a_request(adapters=tuple(Adapter(f"s3://images/in/{n}") for n in "abc")), two)
    assert (error.value, error.allowed) == (
        "3 adapters",
        "at most 2 (validation.max_adapters_per_request)",
    )


URIS = st.sampled_from(
    ["s3://images/in/a", "s3://images/in/b/c.safetensors", "s3://images/in-secret/a", ""]
)
SCALES = st.floats(min_value=-6, max_value=6) | st.sampled_from([math.nan, math.inf, -math.inf])


@given(st.lists(st.builds(Adapter, uri=URIS, scale=SCALES), max_size=6))
def test_any_adapter_list_is_refused_at_its_first_fault_or_passes(adapters: list[Adapter]) -> None:
    bounds = ValidationBounds()
    expected: tuple[str, str] | None = None
    if len(adapters) > bounds.max_adapters_per_request:
        expected = ("adapters", "validation.max_adapters_per_request")
    for i, adapter in enumerate(adapters):
        if expected is not None:
            break
        if adapter.uri == "":
            expected = (f"adapters[{i}].uri", "non-empty")
        elif not adapter.uri.startswith("s3://images/in/"):
            expected = (f"adapters[{i}].uri", "allowed prefixes")
        elif adapter.uri in {a.uri for a in adapters[:i]}:
            expected = (f"adapters[{i}].uri", "named once")
        elif not abs(adapter.scale) <= bounds.max_adapter_scale:  # NaN included
            expected = (f"adapters[{i}].scale", "")
    asked = a_request(adapters=tuple(adapters))
    if expected is None:
        assert check(asked, init_images=ADAPTERS) is asked
        return
    with pytest.raises(InvalidRequest) as caught:
        check(asked, init_images=ADAPTERS)
    assert caught.value.field == expected[0]
    assert expected[1] in caught.value.allowed
