"""Workers as real processes (`python -m streamgen worker`), and the signals faults send them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from streamgen.settings import Settings
from tests.integration.worker.conftest import settings_env

__all__ = ["WorkerProcess", "chaos_settings"]


def chaos_settings(base: Settings, model_dir: Path, group_id: str, **worker: Any) -> Settings:
    """The stack's settings with the tiny model on the CPU and timings short enough for a test.

    session.timeout.ms is the broker's minimum (6 s): membership faults heal in seconds.
    """
    defaults: dict[str, Any] = {
        "group_id": group_id,
        "max_wait_ms": 100,
        "max_in_flight": 16,
        "commit_interval_ms": 200,
        "retry_initial_ms": 100,
        "retry_max_ms": 1000,
        "drain_timeout_s": 30.0,
        "session_timeout_ms": 6000,
        "max_poll_interval_ms": 6000,
    }
    return replace(
        base,
        engine=replace(
            base.engine, models={"tiny": str(model_dir)}, device="cpu", max_batch_size=4
        ),
        worker=replace(base.worker, **{**defaults, **worker}),
    )


class WorkerProcess:
    """One `streamgen worker` child process, its log in ``log_dir``."""

    def __init__(self, settings: Settings, name: str, log_dir: Path) -> None:
        self.name = name
        self.log_file = log_dir / f"{name}-{time.monotonic_ns()}.log"
        settings = replace(settings, worker=replace(settings.worker, worker_id=name))
        env = {
            **os.environ,
            **settings_env(settings),
            "PYTHONUNBUFFERED": "1",
            # One OpenMP thread per worker: on a 2-core machine shared by the broker, MinIO and
            # other workers, torch's spinning thread team stalls a 64x64 batch for tens of
            # seconds (seen as drains that time out), which measures the machine, not streamgen.
            "OMP_NUM_THREADS": "1",
        }
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamgen", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the worker has loaded its model and handles SIGTERM by draining."""
        deadline = time.monotonic() + timeout
        while "consuming" not in self.log():
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} never became ready\n{self.tail()}")
            time.sleep(0.2)

    def wait_assigned(self, timeout: float = 90.0) -> None:
        """Wait until the worker has joined the group and been given partitions."""
        deadline = time.monotonic() + timeout
        while "assigned " not in self.log():
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} was never assigned\n{self.tail()}")
            time.sleep(0.2)

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout: float = 90.0) -> int:
        """SIGTERM (drain, commit, leave) and wait for the exit code; a worker still loading
        its model has no handler yet, so this first waits until it is ready."""
        self.wait_ready()
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def freeze(self) -> None:
        """SIGSTOP: every thread stops, librdkafka's heartbeats included."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} log ({self.log_file}) ---\n{self.log()[-chars:]}"

    def stop(self) -> None:
        """Best-effort cleanup: thaw, terminate, then kill what does not leave."""
        if not self.alive():
            return
        self.thaw()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
