"""Scenarios 5 and 6: a poison request inside a batch of good ones, and every kind of bad record
(plus a fuzz run over mutated request bytes) against one worker process that must never stop."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.settings import ValidationBounds
from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, judge, settle
from tests.integration.worker.conftest import make_request

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SETTLE_TIMEOUT_S = 120.0


def test_scenario_5_poison_request_is_dead_lettered_once_after_max_attempts(
    chaos: ChaosRun,
) -> None:
    # Guidance 1e300 is allowed by this fleet's bounds but overflows the latents to inf/NaN in
    # the real engine, every time: a request that always fails generation, with no fake.
    settings = replace(
        chaos.settings,
        validation=replace(chaos.settings.validation, max_guidance=1e308),
        worker=replace(chaos.settings.worker, max_attempts=3),
    )
    chaos.settings = settings
    outputs = chaos.fleet_outputs()
    good = chaos.requests(11)
    poison = make_request(99, guidance_scale=1e300)
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        # Published together, so the poison request shares its batches with good ones.
        load.publish([*good[:5], poison, *good[5:]])
        worker = chaos.spawn("w1")
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S)
        assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("5 poison request", verdict, faults=1, recovery_s=[recovery],
                   dead_letters_expected=1)  # fmt: skip
    verdict.assert_safe(max_duplicates=0)
    [letter] = outputs.dead_letters()
    assert letter.request_id == poison.request_id
    assert letter.stage == "generate"
    assert letter.headers["streamgen.error.code"] == "NON_FINITE_LATENTS"
    assert letter.headers["streamgen.error.attempts"] == "3"
    statuses = {r.request_id: r.status for r in outputs.results()}
    assert statuses.pop(poison.request_id) == "FAILED"
    assert statuses == {r.request_id: "SUCCEEDED" for r in good}


def _bad_records(chaos: ChaosRun) -> list[tuple[str, bytes | None, bytes, str]]:
    """(name, key, value, expected dead-letter stage) for every kind of bad record."""
    encode = request_codec(chaos.settings.kafka, chaos.settings.topics.requests).encode
    good = encode(make_request(0))
    body = good[10:]  # the Avro body behind the 10-byte single-object header
    past = datetime.now(UTC) - timedelta(minutes=5)

    def request(name: str, **fields: object) -> tuple[str, bytes | None, bytes, str]:
        built = make_request(0, **fields)
        return name, built.request_id.encode(), encode(built), "validate"

    # Keys that are not request ids ("bad:…"): these records end as a dead letter alone.
    return [
        ("garbage bytes", b"bad:garbage", os.urandom(64), "decode"),
        ("empty value", b"bad:empty", b"", "decode"),
        ("registry framing", b"bad:registry", b"\x00\x00\x00\x00\x07" + body, "decode"),
        ("bad single-object marker", b"bad:marker", b"\xc3\x02" + good[2:], "decode"),
        ("unknown schema", b"bad:schema", b"\xc3\x01" + os.urandom(8) + body, "decode"),
        ("truncated body", b"bad:truncated", good[:-7], "decode"),
        request("invalid width", width=100),
        request("oversized image", width=4096, height=4096),
        request("oversized prompt", prompt="x" * 5000),
        request("NaN guidance", guidance_scale=math.nan),
        request("expired deadline", deadline=past),
        request("unknown model", model="no-such-model"),
    ]  # fmt: skip


def test_scenario_6_bad_records_are_dead_lettered_with_their_stage_and_the_worker_stays_up(
    chaos: ChaosRun,
) -> None:
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    bad = _bad_records(chaos)
    good = chaos.requests(6)
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        worker = chaos.spawn("w1")
        # Good requests between the bad ones: bad input must not hold anything else up.
        for i, (_, key, value, _) in enumerate(bad):
            load.send_raw(key, value, request_id=None)
            if i < len(good):
                load.send(good[i])
        load.flush()
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S)
        assert worker.alive() and worker.log().count("consuming") == 1, "the worker restarted"
        assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("6 bad records", verdict, faults=len(bad), recovery_s=[recovery],
                   dead_letters_expected=len(bad))  # fmt: skip
    verdict.assert_safe(max_duplicates=0)
    stage_at = {
        letter.position(settings.topics.requests): letter.stage for letter in outputs.dead_letters()
    }
    position_of = {a.key: (a.partition, a.offset) for a in load.acked if a.request_id is None}
    stages = {name: stage_at.get(position_of[key]) for name, key, _, _ in bad}
    assert stages == {name: stage for name, _, _, stage in bad}
    assert verdict.dead_letters == len(bad)
    succeeded = {r.request_id for r in outputs.results() if r.status == "SUCCEEDED"}
    assert succeeded == {r.request_id for r in good}


# Bounds so that any mutation that still decodes and validates is cheap to generate.
FUZZ_BOUNDS = ValidationBounds(
    min_size=64, max_size=64, max_steps=2, max_num_images=2, max_prompt_chars=200
)


@st.composite
def mutations(draw: st.DrawFn, base: bytes, keep: int) -> bytes:
    """``base`` with 1-4 random edits, none of them in its first ``keep`` bytes."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw(st.integers(keep, max(len(data) - 1, keep)))
        if kind == "flip" and at < len(data):  # an earlier truncation may end at ``keep``
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


def test_scenario_6_fuzz_mutated_request_bytes_every_record_gets_an_outcome(
    chaos: ChaosRun,
) -> None:
    settings_ = replace(chaos.settings, validation=FUZZ_BOUNDS)
    chaos.settings = settings_
    codec = request_codec(settings_.kafka, settings_.topics.requests)
    outputs = chaos.fleet_outputs()
    base = make_request(0, prompt="fuzz", steps=2)
    with LoadGenerator(settings_) as load, CommitSampler(settings_, outputs) as sampler:
        worker = chaos.spawn("w1")
        published = [0]

        @settings(
            max_examples=60,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(st.data())
        def publish_mutation(data: st.DataObject) -> None:
            # A fresh request id per example, so every outcome can be traced to its record.
            # Fixed width: the mutations draw by the base's length, and Hypothesis replays an
            # example's draws exactly, so the base must not grow from "fuzz-9" to "fuzz-10".
            request = replace(base, request_id=f"fuzz-{published[0]:06d}-{os.getpid()}")
            encoded = codec.encode(request)
            # The request id's bytes (and the framing before them) are never mutated: a flipped
            # digit would turn this record into another one's request id, and the oracle would
            # count two records' outcomes as one request's duplicate. Every mutation still
            # reaches the decoder: the rest of the body, and the id's neighbours, are fair game.
            keep = encoded.index(request.request_id.encode()) + len(request.request_id)
            value = data.draw(mutations(encoded, keep))
            try:
                decoded: GenerationRequest | None = codec.decode(value)
            except Exception:
                decoded = None
            load.send_raw(
                request.request_id.encode(), value, decoded.request_id if decoded else None
            )
            published[0] += 1

        publish_mutation()
        load.flush()
        recovery = settle(settings_, lambda: load.acked, outputs, SETTLE_TIMEOUT_S)
        assert worker.alive() and worker.log().count("consuming") == 1, "the worker restarted"
        assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings_, load.acked, outputs, sampler.samples)
    record_verdict("6 fuzz", verdict, faults=published[0], recovery_s=[recovery])
    assert verdict.requests == published[0]
    verdict.assert_safe(max_duplicates=0)
