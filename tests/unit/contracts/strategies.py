"""Hypothesis strategies for the contract values: every field, across its whole Avro range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from streamgen.contracts.dead_letter import DeadLetterReason
from streamgen.contracts.request import Adapter, GenerationRequest
from streamgen.contracts.result import (
    AppliedAdapter,
    GenerationResult,
    ResultError,
    StoredImage,
    Timings,
    WorkerIdentity,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
DOUBLES = st.floats(allow_nan=False)  # NaN != NaN would make equality meaningless
TEXT = st.text(max_size=40)  # Hypothesis leaves out lone surrogates, which UTF-8 cannot carry
METADATA = st.dictionaries(TEXT, TEXT, max_size=5)

# Avro timestamp-millis keeps milliseconds; any timezone decodes to the same instant in UTC.
TIMESTAMPS = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2300, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


@st.composite
def requests(draw: st.DrawFn) -> GenerationRequest:
    return GenerationRequest(
        request_id=draw(TEXT),
        prompt=draw(TEXT),
        negative_prompt=draw(TEXT),
        model=draw(TEXT),
        task=draw(st.sampled_from(["txt2img", "img2img"])),
        init_image_uri=draw(st.none() | TEXT),
        strength=draw(DOUBLES),
        width=draw(INT32),
        height=draw(INT32),
        steps=draw(INT32),
        guidance_scale=draw(DOUBLES),
        seed=draw(st.none() | INT64),
        num_images=draw(INT32),
        scheduler=draw(st.none() | TEXT),
        deadline=draw(st.none() | TIMESTAMPS),
        priority=draw(INT32),
        metadata=draw(METADATA),
        created_at=draw(st.none() | TIMESTAMPS),
        tenant=draw(TEXT),
        adapters=tuple(draw(st.lists(st.builds(Adapter, uri=TEXT, scale=DOUBLES), max_size=3))),
    )


stored_images = st.builds(
    StoredImage,
    index=INT32,
    uri=TEXT,
    bucket=TEXT,
    key=TEXT,
    content_type=TEXT,
    sha256=TEXT,
    size_bytes=INT64,
)


@st.composite
def results(draw: st.DrawFn) -> GenerationResult:
    return GenerationResult(
        request_id=draw(TEXT),
        status=draw(st.sampled_from(["SUCCEEDED", "FAILED"])),
        worker=WorkerIdentity(
            worker_id=draw(TEXT), host=draw(TEXT), device=draw(TEXT), group_id=draw(TEXT)
        ),
        timings=Timings(
            created_at=draw(st.none() | TIMESTAMPS),
            started_at=draw(st.none() | TIMESTAMPS),
            finished_at=draw(st.none() | TIMESTAMPS),
            queue_wait_seconds=draw(DOUBLES),
            gpu_seconds=draw(DOUBLES),
            batch_size=draw(INT32),
        ),
        images=tuple(draw(st.lists(stored_images, max_size=3))),
        width=draw(INT32),
        height=draw(INT32),
        seed=draw(st.none() | INT64),
        model=draw(TEXT),
        error=draw(st.none() | st.builds(ResultError, code=TEXT, message=TEXT, stage=TEXT)),
        attempt=draw(INT32),
        metadata=draw(METADATA),
        tenant=draw(TEXT),
        adapters=tuple(
            draw(
                st.lists(
                    st.builds(AppliedAdapter, uri=TEXT, sha256=TEXT, scale=DOUBLES), max_size=3
                )
            )
        ),
    )


# One undecodable record's reason, for tests of dead-letter forms (vary it with replace()).
DECODE_FAILURE = DeadLetterReason(
    stage="decode",
    error_class="DecodeError",
    code="DECODE_ERROR",
    message="not avro",
    retryable=False,
    attempts=1,
    request_id="",
    topic="requests",
    partition=0,
    offset=7,
    timestamp_ms=5,
    group_id="g",
    worker_id="w-1",
    failed_at_ms=6,
)
