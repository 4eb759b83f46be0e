"""Whatever the way out, the worker's last log line says that it stopped, with which exit code
and why: a log read after the fact must not end mid-story."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from streamgen.configuration import load_settings
from streamgen.exit_codes import EXIT_CONFIG, EXIT_UNEXPECTED
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.run import run_worker

SETTINGS = load_settings({"worker.worker_id": "w1"}, env={})


class ExplodingMetrics(Metrics):
    """A /metrics endpoint that fails in a way the worker does not expect (a bug)."""

    def serve(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the metrics endpoint blew up")


def hooks(metrics: Metrics, port: int) -> WorkerHooks:
    return WorkerHooks(
        metrics, worker_id="w1", host="h", group_id="g", metrics_port=port,
        metrics_address="127.0.0.1",
    )  # fmt: skip


def last_line(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    return [r for r in caplog.records if r.name == "streamgen.worker.run"][-1]


def test_a_start_up_misconfiguration_ends_with_exit_4_and_the_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.INFO):
            code = run_worker(SETTINGS, hooks=hooks(Metrics(gpu=False), port))
    assert code == EXIT_CONFIG
    assert last_line(caplog).getMessage() == (
        "worker w1 stopped: exit 4 (misconfiguration at start-up: worker.metrics_port)"
    )


def test_an_unexpected_error_ends_with_exit_1_and_its_traceback_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        code = run_worker(SETTINGS, hooks=hooks(ExplodingMetrics(gpu=False), 1))
    assert code == EXIT_UNEXPECTED
    last = last_line(caplog)
    assert last.levelno == logging.WARNING
    assert last.getMessage() == (
        "worker w1 stopped: exit 1 (unexpected RuntimeError: the metrics endpoint blew up)"
    )
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.CRITICAL)
