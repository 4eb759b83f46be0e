"""Cancellation on the real broker and MinIO: cancels published with `streamgen.cancel_requests`
and `streamgen cancel`, read by the worker's own follower, end requests before and during their
batch; every request still gets exactly one result and its offset commits."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from click.testing import CliRunner

from streamgen.cli import main
from streamgen.engine import DiffusionEngine
from streamgen.settings import Settings
from streamgen.store import open_store
from streamgen.submit.cancel import cancel_requests
from tests.integration.worker.conftest import (
    assert_stored_equals_alone,
    committed_offsets,
    make_request,
    publish,
    read_dead_letters,
    read_results,
    serve,
    wait_until,
    with_worker,
    worker_thread,
)
from tests.integration.worker.engines import CancelAtStep

pytestmark = pytest.mark.integration


def test_half_of_a_queue_cancelled_before_the_worker_starts(worker_settings: Settings) -> None:
    requests = [make_request(i) for i in range(12)]
    publish(worker_settings, requests)
    cancelled = {r.request_id for r in requests[::2]}
    cancel_requests(worker_settings, sorted(cancelled), reason="integration test")

    serve(worker_settings, expected=len(requests))

    # Read again to the end, after the worker stopped: a request answered twice shows here.
    results = read_results(worker_settings)
    answered = Counter(r.request_id for r in results)
    assert answered == Counter({r.request_id: 1 for r in requests})
    store = open_store(worker_settings.store)
    extension = ""
    for result in results:
        if result.request_id in cancelled:
            assert result.status == "FAILED", result
            assert result.error is not None and result.error.code == "CANCELLED"
            # The follower read the cancels before the worker joined: none reached a batch.
            assert result.error.stage == "intake"
            assert not result.images
        else:
            assert result.status == "SUCCEEDED", result
            (image,) = result.images
            extension = image.uri.rsplit(".", 1)[1]
            assert store.stat(f"{result.request_id}/0.{extension}") is not None
    assert extension, "no request succeeded"
    for request_id in cancelled:
        assert store.stat(f"{request_id}/0.{extension}") is None, f"{request_id} was stored"
    assert read_dead_letters(worker_settings) == []
    assert sum(committed_offsets(worker_settings).values()) == len(requests)


def test_a_cancel_arriving_mid_batch_drops_only_that_row(worker_settings: Settings) -> None:
    """`streamgen cancel` run while the batch denoises: the row leaves at the next step, the
    others' images are those each request gets alone."""
    settings = with_worker(worker_settings, max_wait_ms=3000)  # the four in one batch
    settings = replace(settings, engine=replace(settings.engine, max_batch_size=4))
    requests = [make_request(i, steps=4) for i in range(4)]
    target = requests[1].request_id

    def cancel_with_the_cli() -> None:
        flags = ["--bootstrap-servers", settings.kafka.bootstrap_servers]
        flags += ["--set", f"topics.cancels={settings.topics.cancels}"]
        outcome = CliRunner().invoke(main, ["cancel", *flags, target])
        assert outcome.exit_code == 0, outcome.output

    engine = CancelAtStep(DiffusionEngine(settings.engine), target, 2, cancel_with_the_cli)
    publish(settings, requests)
    with worker_thread(settings, engine=engine) as worker:
        by_id = {r.request_id: r for r in read_results(settings, expected=4, timeout=180)}
        assert wait_until(lambda: sum(committed_offsets(settings).values()) == 4, 30)
        assert worker.stop_and_wait() == 0

    (batch,) = [b for b in engine.batches if target in b]
    assert len(batch) == 4, f"the target ran in a batch of {batch}, not of all four"
    assert engine.asked == 2 + 2, "dropped before its third step, never asked again"
    error = by_id[target].error
    assert by_id[target].status == "FAILED" and not by_id[target].images
    assert error is not None and (error.code, error.stage) == ("CANCELLED", "generate")
    others = [r for r in requests if r.request_id != target]
    assert all(by_id[r.request_id].status == "SUCCEEDED" for r in others)
    assert_stored_equals_alone(settings, by_id, others)
    assert read_dead_letters(settings) == []
    assert len(read_results(settings)) == 4
