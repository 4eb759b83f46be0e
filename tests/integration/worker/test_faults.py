"""Faults against the real broker and MinIO: nothing lost, nothing committed early."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import pytest

from streamgen.engine import DiffusionEngine
from streamgen.settings import Settings
from streamgen.store import open_store
from streamgen.store.encode import encode_image
from tests.integration.worker.conftest import (
    all_committed,
    committed_offsets,
    make_request,
    publish,
    read_dead_letters,
    read_results,
    settings_env,
    wait_until,
    with_worker,
    worker_thread,
)
from tests.integration.worker.engines import SlowEngine

pytestmark = pytest.mark.integration


def test_object_store_outage_dead_letters_nothing_and_commits_nothing_past_it(
    stack, worker_settings: Settings
) -> None:
    with worker_thread(worker_settings) as worker:
        publish(worker_settings, [make_request(0)])
        assert len(read_results(worker_settings, expected=1, timeout=60)) == 1
        assert wait_until(lambda: all_committed(worker_settings), 20)
        before = committed_offsets(worker_settings)

        stack.stop_minio()
        try:
            publish(worker_settings, [make_request(i) for i in range(1, 5)])
            time.sleep(6)  # several store retries happen in this window
            assert len(read_results(worker_settings, timeout=2)) == 1, "no result without images"
            assert read_dead_letters(worker_settings, timeout=1) == []
            assert committed_offsets(worker_settings) == before, "committed past the outage"
        finally:
            stack.start_minio()

        results = read_results(worker_settings, expected=5, timeout=120)
        assert wait_until(lambda: all_committed(worker_settings), 30)
        worker.stop_and_wait()
    assert sorted(Counter(r.request_id for r in results).values()) == [1] * 5
    assert all(r.status == "SUCCEEDED" for r in results)
    assert read_dead_letters(worker_settings, timeout=1) == []


def test_a_batch_longer_than_max_poll_interval_causes_no_rebalance_and_no_duplicates(
    worker_settings: Settings,
) -> None:
    settings = with_worker(
        worker_settings, max_poll_interval_ms=6000, session_timeout_ms=6000, max_wait_ms=50
    )
    store = open_store(settings.store)
    engine = SlowEngine(DiffusionEngine(settings.engine), sleep_s=9.0)
    publish(settings, [make_request(i) for i in range(3)])
    with worker_thread(settings, engine=engine, store=store, encode=encode_image) as worker:
        results = read_results(settings, expected=3, timeout=120)
        assert wait_until(lambda: all_committed(settings), 20)
        worker.stop_and_wait()
    assert sum(engine.batches) == 3, f"requests generated again after a rebalance: {engine.batches}"
    assert sorted(Counter(r.request_id for r in results).values()) == [1, 1, 1]
    assert len({r.worker.worker_id for r in results}) == 1


def test_a_second_worker_joining_mid_stream_loses_nothing(worker_settings: Settings) -> None:
    count = 60
    requests = [make_request(i, steps=4) for i in range(count)]
    # A small in-flight bound keeps most of the backlog in Kafka for the new member to take.
    first = with_worker(worker_settings, worker_id="w1", max_in_flight=8)
    second = with_worker(worker_settings, worker_id="w2", max_in_flight=8)
    publish(worker_settings, requests)
    # The first member is slowed (1 s per batch) so that, however loaded the machine, the
    # backlog is still there when the second member joins.
    store = open_store(first.store)
    slow = SlowEngine(DiffusionEngine(first.engine), sleep_s=1.0)
    with worker_thread(first, engine=slow, store=store, encode=encode_image) as w1:
        assert wait_until(lambda: len(read_results(first, timeout=1)) >= 4, 90)
        with worker_thread(second) as w2:
            assert wait_until(
                lambda: (
                    {r.request_id for r in read_results(first, timeout=2)}
                    >= {r.request_id for r in requests}
                ),
                180,
            )
            assert wait_until(lambda: all_committed(first), 30)
            w2.stop_and_wait()
        w1.stop_and_wait()
    results = read_results(first, timeout=5)
    per_id = Counter(r.request_id for r in results)
    assert set(per_id) == {r.request_id for r in requests}
    duplicates = sum(n - 1 for n in per_id.values())
    assert duplicates <= first.worker.max_in_flight
    assert {r.worker.worker_id for r in results} == {"w1", "w2"}, "the new member took no work"
    assert all(r.status == "SUCCEEDED" for r in results)


def _spawn_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.Popen(
        [sys.executable, "-m", "streamgen", "worker"], env=env, stderr=subprocess.PIPE
    )


def test_sigterm_mid_batch_finishes_and_commits_then_a_restart_duplicates_nothing(
    worker_settings: Settings,
) -> None:
    settings = replace(worker_settings, engine=replace(worker_settings.engine, max_batch_size=2))
    requests = [make_request(i, steps=6) for i in range(10)]
    publish(settings, requests)
    process = _spawn_worker(settings)
    try:
        assert wait_until(lambda: len(read_results(settings, timeout=1)) >= 1, 120)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=90)
        assert process.returncode == 0, stderr.decode()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    done = {r.request_id for r in read_results(settings, timeout=3)}
    committed = committed_offsets(settings)
    assert sum(committed.values()) == len(done), "commit != durable work"

    restart = _spawn_worker(settings)
    try:
        results = read_results(settings, expected=len(requests), timeout=180)
        restart.send_signal(signal.SIGTERM)
        restart.communicate(timeout=90)
    finally:
        if restart.poll() is None:
            restart.kill()
    per_id = Counter(r.request_id for r in results)
    assert set(per_id) == {r.request_id for r in requests}
    assert max(per_id.values()) == 1, f"duplicates after a clean SIGTERM: {per_id.most_common(3)}"


def test_a_second_sigterm_stops_now_exits_2_and_says_how_much_is_left(
    worker_settings: Settings,
) -> None:
    """The second signal: stop at once (no revoke grace for work that can no longer finish),
    commit only what is durable, exit 2, and count the unfinished work right (it read 0 before:
    the close's revoke had forgotten the partitions by the time it was counted)."""
    settings = replace(worker_settings, engine=replace(worker_settings.engine, max_batch_size=2))
    requests = [make_request(i, steps=40) for i in range(12)]
    publish(settings, requests)
    process = _spawn_worker(settings)
    try:
        assert wait_until(lambda: len(read_results(settings, timeout=1)) >= 1, 120)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the first signal's drain has begun; the second cuts it short
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    log = stderr.decode()
    assert process.returncode == 2, log[-3000:]
    assert "again: stopping now" in log
    [line] = [ln for ln in log.splitlines() if "requests unfinished" in ln]
    unfinished = int(line.split(" requests unfinished")[0].split()[-1])
    done = {r.request_id for r in read_results(settings, timeout=3)}
    assert unfinished >= 1 and len(done) + unfinished <= len(requests), line
    assert sum(committed_offsets(settings).values()) == len(done), "commit != durable work"
