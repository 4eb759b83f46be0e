"""Whatever a request's fields hold, the engine answers with images or that request's error.

Requests come two ways: valid ones, sent through the Avro codec and ``validate`` as the worker
does, and raw ones that never saw either (another caller, a bug upstream). Only DeviceLost and
StoreUnavailable may leave ``generate``; anything else would make the worker exit and, with the
record uncommitted, crash-loop on it. Sizes stay tiny so that the real code runs on a CPU.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import MAX_SEED, validate
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.schedulers import SCHEDULERS
from streamgen.errors import GenerationFailed, InvalidRecord, StoreUnavailable
from streamgen.settings import EngineSettings, KafkaSettings, StoreSettings, ValidationBounds
from streamgen.store.init_images import InitImageReader
from streamgen.store.prefixes import AllowedPrefixes
from tests.support.memory_store import MemoryStore

STORE = "s3://images/in"
MAX_BYTES = 4096


def _png(size: tuple[int, int]) -> bytes:
    pixels = np.random.default_rng(size[0]).integers(0, 255, (size[1], size[0], 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


OBJECTS = {
    f"{STORE}/cat.png": _png((16, 16)),
    f"{STORE}/wide.png": _png((40, 8)),
    f"{STORE}/broken.png": b"\x89PNG\r\n\x1a\n not really",
    f"{STORE}/empty.png": b"",
    f"{STORE}/huge.png": b"\x00" * (MAX_BYTES + 1),
    "s3://elsewhere/secret.png": _png((16, 16)),
}
URIS = st.sampled_from(
    [
        *OBJECTS,
        f"{STORE}/missing.png",
        f"{STORE}/../../elsewhere/secret.png",
        f"{STORE}-secret/cat.png",
        f"{STORE}/%2e%2e/x.png",
        "file:///etc/passwd",
        "http://example/x.png",
        "cat.png",
        "",
        " ",
        "s3://",
        "s3://images/in/a\\b.png",
        "s3://images/in/nul%00.png",
    ]
)
# Prompts: any text, plus what tokenizers and encoders tend to trip on.
PROMPTS = st.text(max_size=60) | st.sampled_from(
    [
        "\u202eevil\u202c",  # right-to-left override
        "e\u0301\u0301\u0301\u0301",  # stacked combining marks
        "\U0001f600" * 100,
        "\x00\x1b[31m",
        "\ufeff\u200b\u200d",
        "x" * 2000,  # far past the tokenizer's 77 tokens
    ]
)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
BOUNDS = ValidationBounds(max_size=80, max_num_images=2, max_steps=3)
PREFIXES = AllowedPrefixes.from_settings(StoreSettings(url=STORE))
OBJECT_STORE = MemoryStore(OBJECTS)  # the outage test takes it down for one call


@pytest.fixture(scope="module")
def fuzz_engine(tiny_dir: Path) -> DiffusionEngine:
    # A fixed batch size: probing is exercised by test_parts; here it would only cost time.
    engine_settings = EngineSettings(models={"tiny": str(tiny_dir)}, max_batch_size=4)
    store_settings = StoreSettings(url=STORE, init_image_max_bytes=MAX_BYTES)
    reader = InitImageReader.from_settings(store_settings, OBJECT_STORE)
    return DiffusionEngine(engine_settings, reader, clock=lambda: NOW)


@st.composite
def valid_requests(draw: st.DrawFn) -> GenerationRequest:
    """Requests ``validate`` lets through (with the store's allow-list), small enough for a CPU."""
    task = draw(st.sampled_from(["txt2img", "img2img"]))
    num_images = draw(st.integers(1, 2))
    return GenerationRequest(
        request_id=draw(st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", fullmatch=True)),
        prompt=draw(PROMPTS.filter(str.strip)),
        negative_prompt=draw(PROMPTS),
        model=draw(st.sampled_from(["tiny", "default"])),
        task=task,
        init_image_uri=draw(URIS) if task == "img2img" else None,
        strength=draw(st.floats(0.0, 1.0, exclude_min=True)),
        width=draw(st.sampled_from([64, 72])),
        height=draw(st.sampled_from([64, 80])),
        steps=draw(st.integers(1, 3)),
        guidance_scale=draw(st.floats(0.0, 30.0)),
        seed=draw(st.none() | st.integers(0, MAX_SEED - num_images + 1)),
        num_images=num_images,
        scheduler=draw(st.none() | st.sampled_from(SCHEDULERS)),
        deadline=draw(st.none() | st.just(NOW + timedelta(days=1))),
        priority=draw(st.integers(-(2**31), 2**31 - 1)),
        metadata=draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4)),
        created_at=draw(st.none() | st.just(NOW)),
    )


# Per field, values that validation refuses or the Avro codec could not even carry.
ODD: dict[str, tuple[Any, ...]] = {
    "request_id": ("\ud800", "", ".", "../x", None, 7),
    "prompt": ("\udfff lone surrogate", "", None, 3, b"bytes"),
    "negative_prompt": (None, ["a", "list"], "\ud800"),
    "model": ("nope", "", None, ["tiny"]),
    "task": ("inpaint", None, "IMG2IMG"),
    "init_image_uri": (None, 3, b"s3://images/in/cat.png", "file:///etc/passwd"),
    "strength": (0.0, -0.5, 1.5, float("nan"), float("inf"), None, "0.5"),
    "width": (0, -64, 7, 65, 64.0, None, "64"),
    "height": (0, -8, 9, None),
    "steps": (0, -1, 1001, 2.5, None),
    "guidance_scale": (-1.0, float("nan"), float("inf"), 1e308, None),
    "seed": (-1, MAX_SEED, 2**64, 2**70, 1.5, "1"),
    "num_images": (0, -1, None, 1.0),
    "scheduler": ("", "nope", 3, "DDIM"),
    "deadline": (NOW - timedelta(days=1), datetime(2031, 1, 1), "tomorrow"),
    "priority": (None, 2**70),
    "metadata": (None, {1: 2}, [("a", "b")]),
    "created_at": (datetime(2031, 1, 1), 0),
}


@st.composite
def raw_requests(draw: st.DrawFn) -> GenerationRequest:
    """A valid request with one or two fields broken, as if codec and ``validate`` were skipped
    (one field at a time, so the others do not hide it behind an earlier refusal)."""
    request = draw(valid_requests())
    broken = draw(st.lists(st.sampled_from(sorted(ODD)), min_size=1, max_size=2, unique=True))
    return request.replace(**{name: draw(st.sampled_from(ODD[name])) for name in broken})


def _assert_images_or_own_errors(
    engine: DiffusionEngine, batch: list[GenerationRequest], outcomes: list[Any]
) -> None:
    assert len(outcomes) == len(batch)
    for request, outcome in zip(batch, outcomes, strict=True):
        assert outcome.request is request
        if outcome.error is None:
            assert len(outcome.images) == request.num_images
            assert all(i.size == (request.width, request.height) for i in outcome.images)
        else:
            assert isinstance(outcome.error, GenerationFailed)
            assert outcome.images == ()
            assert str(outcome.error)


def _admitted(request: GenerationRequest) -> GenerationRequest | None:
    """The request as the worker would hand it to the engine: decoded, then validated."""
    codec = request_codec(KafkaSettings(), "fuzz.requests")
    decoded = codec.decode(codec.encode(request))
    try:
        return validate(
            decoded,
            BOUNDS,
            models={"tiny", "default"},
            schedulers=SCHEDULERS,
            now=NOW,
            init_images=PREFIXES,
        )
    except InvalidRecord:
        return None


FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(st.lists(valid_requests(), min_size=1, max_size=3))
def test_decoded_and_validated_requests_get_images_or_their_own_error(
    fuzz_engine: DiffusionEngine, drawn: list[GenerationRequest]
) -> None:
    batch = [r for r in map(_admitted, drawn) if r is not None]
    if not batch:
        return
    outcomes = fuzz_engine.generate(batch)
    _assert_images_or_own_errors(fuzz_engine, batch, outcomes)
    for request, outcome in zip(batch, outcomes, strict=True):
        if request.task == "txt2img" or request.init_image_uri == f"{STORE}/cat.png":
            assert outcome.error is None or outcome.error.code == "BLACK_IMAGE", outcome.error


@settings(FUZZ, max_examples=60)  # most of these fail fast, before the UNet
@given(st.lists(raw_requests(), min_size=1, max_size=3), st.booleans())
def test_unvalidated_requests_never_raise_but_store_outages(
    fuzz_engine: DiffusionEngine, batch: list[GenerationRequest], store_down: bool
) -> None:
    OBJECT_STORE.down = store_down
    try:
        outcomes = fuzz_engine.generate(batch)
    except StoreUnavailable:
        assert store_down
        return
    finally:
        OBJECT_STORE.down = False
    _assert_images_or_own_errors(fuzz_engine, batch, outcomes)


def test_a_shape_the_scheduler_cannot_run_fails_alone_even_when_probing(tiny_dir: Path) -> None:
    # validation.max_steps may be raised past the 1000 training steps, which DDIM refuses;
    # the engine probes the batch size of that shape before it runs it.
    engine = DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}))
    too_many, fine = engine.generate(
        [
            GenerationRequest("a", "a cat", model="tiny", steps=1001, scheduler="ddim"),
            GenerationRequest("b", "a dog", model="tiny", width=64, height=64, steps=1),
        ]
    )
    assert too_many.error is not None and not fine.error
