"""`streamgen replay` against the real broker: filters, dry run, provenance, idempotence."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from streamgen.cli import main
from streamgen.contracts.codec import request_codec
from streamgen.contracts.dead_letter import (
    H_ATTEMPT,
    H_REPLAY_AT,
    H_REPLAY_COUNT,
    H_REPLAY_SOURCE_OFFSET,
    H_REPLAY_SOURCE_PARTITION,
    ClaimCheck,
    ClaimedObject,
    DeadLetterReason,
    claim_checked_dead_letter,
    dead_letter_headers,
    header_map,
)
from streamgen.contracts.request import GenerationRequest
from streamgen.ops.replay_rules import ReplayFilter
from streamgen.ops.replay_run import Replayer
from streamgen.settings import Settings
from streamgen.store import open_store
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration


def reason(
    settings: Settings,
    *,
    rid: str,
    code: str,
    stage: str,
    retryable: bool,
    offset: int,
    partition: int = 0,
    failed_at_ms: int | None = None,
) -> DeadLetterReason:
    now = int(time.time() * 1000)
    return DeadLetterReason(
        stage=stage,
        error_class="GenerationFailed" if stage == "generate" else "DecodeError",
        code=code,
        message=f"{code} for {rid}",
        retryable=retryable,
        attempts=3,
        request_id=rid,
        topic=settings.topics.requests,
        partition=partition,
        offset=offset,
        timestamp_ms=now - 5000,
        group_id="streamgen",
        worker_id="w1",
        failed_at_ms=failed_at_ms if failed_at_ms is not None else now,
    )


def produce_dead_letters(settings: Settings) -> list[str]:
    """Three generate failures (retryable, model tiny), one decode failure, one old failure."""
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    ids = [f"dl-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
    day_ago = int(time.time() * 1000) - 86_400_000
    for i, rid in enumerate(ids):
        if i == 3:
            value = b"\x07garbage"
            why = reason(
                settings,
                rid="",
                code="DECODE_ERROR",
                stage="decode",
                retryable=False,
                offset=100 + i,
            )
        else:
            request = GenerationRequest(request_id=rid, prompt="p", model="tiny")
            value = codec.encode(request)
            why = reason(
                settings,
                rid=rid,
                code="GENERATION_FAILED",
                stage="generate",
                retryable=True,
                offset=100 + i,
                partition=i % 2,
                failed_at_ms=day_ago if i == 4 else None,
            )
        original = [("app.trace", f"t{i}".encode())]
        producer.produce(
            settings.topics.dead_letter,
            key=rid.encode() or None,
            value=value,
            headers=dead_letter_headers(original, why),
        )
    assert producer.flush(30) == 0
    return ids


def replayed(settings: Settings) -> list:  # type: ignore[type-arg]
    return consume_all(settings.kafka.bootstrap_servers, settings.topics.requests, timeout=3)


def test_replay_republishes_matches_once_with_provenance(stack_settings: Settings) -> None:
    ids = produce_dead_letters(stack_settings)
    group = f"replay-{uuid.uuid4().hex[:6]}"
    selection = ReplayFilter(codes=frozenset({"GENERATION_FAILED"}), since_ms=0)
    summary = Replayer(stack_settings, group=group).run(selection, rate=100)
    assert (summary.examined, summary.matched, summary.replayed) == (5, 4, 4)

    out = replayed(stack_settings)
    assert sorted(m.key().decode() for m in out) == sorted([ids[0], ids[1], ids[2], ids[4]])
    first = next(m for m in out if m.key().decode() == ids[0])
    headers = header_map(first.headers())
    assert not any(k.startswith("streamgen.error.") for k in headers)
    assert headers["app.trace"] == "t0"
    assert headers[H_REPLAY_COUNT] == "1"
    assert headers[H_REPLAY_SOURCE_PARTITION] == "0"
    assert headers[H_REPLAY_SOURCE_OFFSET] == "0"
    assert int(headers[H_REPLAY_AT]) > 0
    assert headers[H_ATTEMPT] == "3"
    # The value is the original bytes: it decodes to the same request.
    codec = request_codec(stack_settings.kafka, stack_settings.topics.requests)
    assert codec.decode(first.value()).request_id == ids[0]

    # Second run with the same group: progress was committed, nothing is replayed twice.
    again = Replayer(stack_settings, group=group).run(selection)
    assert (again.examined, again.replayed) == (0, 0)
    assert len(replayed(stack_settings)) == 4


def test_filters_select_exactly_what_they_name(stack_settings: Settings) -> None:
    ids = produce_dead_letters(stack_settings)
    now = int(time.time() * 1000)

    def would(selection: ReplayFilter) -> list[str]:
        summary = Replayer(stack_settings, group=f"g-{uuid.uuid4().hex[:6]}").run(
            selection, dry_run=True
        )
        return sorted(v.reason.request_id for v in summary.would_replay)

    assert would(ReplayFilter(stages=frozenset({"decode"}))) == [""]
    assert would(ReplayFilter(error_classes=frozenset({"GenerationFailed"}))) == sorted(
        [ids[0], ids[1], ids[2], ids[4]]
    )
    assert would(ReplayFilter(retryable=False)) == [""]
    assert would(
        ReplayFilter(since_ms=now - 3_600_000, codes=frozenset({"GENERATION_FAILED"}))
    ) == sorted(ids[:3])
    assert would(ReplayFilter(until_ms=now - 3_600_000)) == [ids[4]]
    assert would(ReplayFilter(partitions=frozenset({1}))) == [ids[1]]
    assert would(ReplayFilter(offset_range=(101, 102))) == sorted([ids[1], ids[2]])
    assert would(ReplayFilter(models=frozenset({"tiny"}))) == sorted(
        [ids[0], ids[1], ids[2], ids[4]]
    )
    assert would(ReplayFilter(request_ids=frozenset({ids[2]}))) == [ids[2]]
    # A dry run changes nothing: no records, no progress.
    assert replayed(stack_settings) == []


def test_records_past_max_replays_are_skipped(
    stack_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    ids = produce_dead_letters(stack_settings)
    target = stack_settings.topics.results  # any existing topic: --to overrides the original
    first = Replayer(stack_settings, group="a").run(
        ReplayFilter(request_ids=frozenset({ids[0]})), to_topic=target
    )
    assert first.replayed == 1
    # The replayed record fails again: its dead letter keeps the replay count header.
    (again,) = consume_all(stack_settings.kafka.bootstrap_servers, target, expected=1)
    why = reason(
        stack_settings,
        rid=ids[0],
        code="GENERATION_FAILED",
        stage="generate",
        retryable=True,
        offset=again.offset(),
    )
    producer = Producer({"bootstrap.servers": stack_settings.kafka.bootstrap_servers})
    producer.produce(
        stack_settings.topics.dead_letter,
        key=again.key(),
        value=again.value(),
        headers=dead_letter_headers(again.headers(), why),
    )
    producer.flush(30)
    summary = Replayer(stack_settings, group="b").run(
        ReplayFilter(request_ids=frozenset({ids[0]})), max_replays=1, to_topic=target
    )
    assert (summary.matched, summary.replayed, summary.skipped_max_replays) == (2, 1, 1)
    assert "already replayed 1 times" in caplog.text


def test_cli_dry_run_table_and_bad_filters(stack_settings: Settings) -> None:
    ids = produce_dead_letters(stack_settings)
    base = [
        "replay",
        "--bootstrap-servers",
        stack_settings.kafka.bootstrap_servers,
        "--set",
        f"topics.dead_letter={stack_settings.topics.dead_letter}",
        "--set",
        f"topics.requests={stack_settings.topics.requests}",
    ]
    runner = CliRunner()
    out = runner.invoke(main, [*base, "--dry-run", "--request-id", ids[1]])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["REQUEST-ID", "ERROR", "ATTEMPTS", "AGE", "SOURCE"]
    assert lines[1].split()[:3] == [ids[1], "generate/GENERATION_FAILED", "3"]
    assert "would replay 1" in out.stdout
    bad = runner.invoke(main, [*base, "--since", "yesterday-ish"])
    assert bad.exit_code == 2
    assert "--since: 'yesterday-ish'" in bad.output
    real = runner.invoke(main, [*base, "--request-id", ids[1], "--group", "cli"])
    assert real.exit_code == 0, real.output
    assert "replayed 1" in real.stdout
    assert [m.key().decode() for m in replayed(stack_settings)] == [ids[1]]


def test_a_dry_run_reports_a_claim_object_gone_from_the_store(stack_settings: Settings) -> None:
    """What --dry-run says would happen is what the real run does: a claim-checked dead letter
    whose object is missing (or changed) is counted as skipped, not as to be replayed."""
    store = open_store(stack_settings.store)
    store.ensure_ready(create=True)

    def put(key: str, data: bytes) -> str:
        return store.put(key, data, index=0, content_type="text/plain", metadata={}).uri

    kept = f"claims/{uuid.uuid4().hex}.bin"
    kept_uri = put(kept, b"the original request bytes")
    gone_uri = kept_uri.replace(kept, f"claims/{uuid.uuid4().hex}-gone.bin")
    changed_uri = put(f"claims/{uuid.uuid4().hex}.bin", b"other bytes")
    producer = Producer({"bootstrap.servers": stack_settings.kafka.bootstrap_servers})
    ids = [f"claim-{name}-{uuid.uuid4().hex[:6]}" for name in ("kept", "gone", "changed")]
    sha = hashlib.sha256(b"the original request bytes").hexdigest()
    for rid, uri in zip(ids, (kept_uri, gone_uri, changed_uri), strict=True):
        why = reason(stack_settings, rid=rid, code="GENERATION_FAILED", stage="generate",
                     retryable=True, offset=1)  # fmt: skip
        claim = ClaimCheck(value=ClaimedObject(uri=uri, size=26, sha256=sha), envelope=None)
        key, value, headers = claim_checked_dead_letter(rid.encode(), [], why, claim)
        producer.produce(stack_settings.topics.dead_letter, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0
    selection = ReplayFilter(request_ids=frozenset(ids))
    for dry_run in (True, False):
        group = f"claims-{uuid.uuid4().hex[:6]}"
        summary = Replayer(stack_settings, group=group).run(selection, dry_run=dry_run)
        assert summary.skipped_missing_claim == 2, dry_run
        assert summary.matched == 1, dry_run
        if dry_run:
            assert [v.reason.request_id for v in summary.would_replay] == [ids[0]]
        else:
            assert summary.replayed == 1
