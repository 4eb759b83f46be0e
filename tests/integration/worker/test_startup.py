"""A worker that cannot work says so at start-up: within a bounded time, with exit code 4 and one
paragraph naming the setting, never a traceback, never a hang (DESIGN invariant 10).

Each case runs `python -m streamgen worker` as a real process against the real broker and MinIO,
with one setting wrong, as an operator would meet it. The table of every start-up mistake is
test_startup_mistakes.py; the cases here check more than the one line (a bucket that must not
be created, a secret that must not be printed, tracing set up before the checks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import pytest
import torch
from minio import Minio

from streamgen.exit_codes import EXIT_CONFIG
from streamgen.settings import Settings
from tests.integration.worker.conftest import settings_env

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT_S = 5.0
# Start-up may load torch and the model before it meets a model or device fault; everything
# else must be found before that, within the connect timeout plus process start.
WITHIN_S = 60.0


def start_worker(
    settings: Settings, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> tuple[int, str, float]:
    """Run a worker to its exit; (exit code, everything it printed, seconds it took)."""
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streamgen", "worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=WITHIN_S * 2,  # a hang fails the test instead of blocking the suite
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - began


def fast(settings: Settings, kafka_timeout_s: float = CONNECT_TIMEOUT_S) -> Settings:
    return replace(
        settings,
        kafka=replace(settings.kafka, connect_timeout_s=kafka_timeout_s),
        store=replace(settings.store, connect_timeout_s=CONNECT_TIMEOUT_S),
    )


def assert_refused(
    settings: Settings, setting: str, *words: str, kafka_timeout_s: float = CONNECT_TIMEOUT_S
) -> str:
    code, output, took = start_worker(fast(settings, kafka_timeout_s))
    assert code == EXIT_CONFIG, output[-3000:]
    assert took < WITHIN_S, f"took {took:.0f}s"
    assert "Traceback" not in output, output[-3000:]
    [line] = [ln for ln in output.splitlines() if "cannot start" in ln]
    assert f"setting {setting!r}" in line, line
    for word in words:
        assert word in line, line
    assert "consuming" not in output, "it joined the group before failing"
    last = output.strip().splitlines()[-1]
    assert last.endswith(f"stopped: exit {EXIT_CONFIG} (misconfiguration at start-up: {setting})")
    return line


def test_the_worker_sets_tracing_up_from_the_otel_variables(worker_settings: Settings) -> None:
    # The README's promise: OTEL_TRACES_EXPORTER turns the worker's spans on. A misspelt topic
    # makes the process short; tracing is set up before the start-up checks.
    typo = f"{worker_settings.topics.requests}-typo"
    wrong = replace(worker_settings, topics=replace(worker_settings.topics, requests=typo))
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "false"}
    code, output, _ = start_worker(fast(wrong), env)
    assert code == EXIT_CONFIG, output[-3000:]
    assert "tracing on: exporting spans to console" in output, output[-3000:]


def test_a_misspelt_bucket_stops_start_up_and_is_not_created(worker_settings: Settings) -> None:
    bucket = f"no-such-{uuid.uuid4().hex[:10]}"
    store = replace(worker_settings.store, url=f"s3://{bucket}", create_bucket=False)
    assert_refused(replace(worker_settings, store=store), "store.url", bucket, "create_bucket")
    client = Minio(store.endpoint, store.access_key, store.secret_key, secure=False)
    assert not client.bucket_exists(bucket)


def test_a_wrong_store_secret_stops_start_up(worker_settings: Settings) -> None:
    store = replace(worker_settings.store, secret_key="not-the-secret")
    line = assert_refused(replace(worker_settings, store=store), "store.access_key", "secret_key")
    assert "not-the-secret" not in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_for_without_cuda_stops_start_up(worker_settings: Settings) -> None:
    engine = replace(worker_settings.engine, device="cuda")
    assert_refused(replace(worker_settings, engine=engine), "engine.device", "CUDA")
