"""`streamgen fleet`: real child processes (spawned), killed, restarted, given up on, drained."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from streamgen.fleet.processes import Fleet
from streamgen.fleet.supervisor import RestartPolicy, Supervisor, WorkerSlot, plan_slots

pytestmark = pytest.mark.integration


def child(slot: WorkerSlot, overrides: Mapping[str, Any], _config: str | None) -> int:
    """A stand-in worker: reports itself, crashes if told to, else runs until SIGTERM."""
    out = Path(overrides["test.dir"])
    if slot.index in overrides.get("test.crash", ()):
        return 3
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    report = {
        "pid": os.getpid(),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "worker_id": overrides.get("worker.worker_id", slot.worker_id),
    }
    (out / f"{slot.index}-{os.getpid()}.json").write_text(json.dumps(report))
    stop.wait(120)
    (out / f"{slot.index}-{os.getpid()}.drained").write_text("")
    return 0


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def started(out: Path, index: int) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"{index}-*.json"))]


def run_in_thread(fleet: Fleet) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(fleet.run()), daemon=True)
    thread.start()
    return thread, code


def test_sigkilled_worker_is_restarted_and_stop_drains_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    slots = plan_slots(gpus="0,1", workers=None, device_count=2, host="h")
    fleet = Fleet(
        slots,
        supervisor=Supervisor(RestartPolicy(initial_backoff_s=0.1)),
        overrides={"test.dir": str(tmp_path)},
        target=child,
    )
    thread, code = run_in_thread(fleet)
    wait_for(lambda: started(tmp_path, 0) and started(tmp_path, 1), "both workers")
    # Each child saw only its own GPU.
    assert [started(tmp_path, i)[0]["cuda"] for i in (0, 1)] == ["0", "1"]
    victim = started(tmp_path, 0)[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(started(tmp_path, 0)) == 2, "the restart of worker 0")
    assert "worker 0 (gpu 0) killed by SIGKILL — out of memory?; restarting" in caplog.text
    survivor = started(tmp_path, 1)
    assert len(survivor) == 1  # the other worker was left alone
    fleet.request_stop()
    thread.join(60)
    assert code == [0]
    assert len(list(tmp_path.glob("*.drained"))) == 2  # the live ones drained on SIGTERM


def test_crash_looping_worker_is_given_up_while_others_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slots = plan_slots(gpus=None, workers=2, device_count=0, host="h")
    policy = RestartPolicy(initial_backoff_s=0.05, max_crashes=3, window_s=60)
    fleet = Fleet(
        slots,
        supervisor=Supervisor(policy),
        overrides={"test.dir": str(tmp_path), "test.crash": (0,)},
        target=child,
    )
    thread, code = run_in_thread(fleet)
    wait_for(lambda: fleet.given_up == {0}, "worker 0 to be given up on")
    assert "worker 0 (cpu) exited with code 3; giving up on it after 3 crashes" in caplog.text
    (alive,) = started(tmp_path, 1)
    assert alive["cuda"] == ""  # CPU workers never see a GPU
    os.kill(alive["pid"], 0)  # still running
    fleet.request_stop()
    thread.join(60)
    assert code == [0]


@pytest.mark.slow
def test_fleet_command_runs_real_cpu_workers(stack_settings: Any, tmp_path: Path) -> None:
    """`streamgen fleet` with a real CPU worker on the tiny model: a SIGKILLed worker comes
    back, every request gets a result, SIGTERM drains the fleet. One worker, because a 2-core
    CI box imports torch once at a time; the pure-target tests above cover several."""
    from streamgen.engine.model_init import write_model
    from tests.integration.worker.conftest import make_request, publish
    from tests.support.kafka import consume_all

    model = tmp_path / "tiny"
    write_model("tiny", model)
    s = stack_settings
    env = {
        **os.environ,
        "STREAMGEN_KAFKA_BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
        "STREAMGEN_TOPICS_REQUESTS": s.topics.requests,
        "STREAMGEN_TOPICS_RESULTS": s.topics.results,
        "STREAMGEN_TOPICS_DEAD_LETTER": s.topics.dead_letter,
        "STREAMGEN_TOPICS_CANCELS": s.topics.cancels,
        "STREAMGEN_WORKER_MAX_WAIT_MS": "100",
        "STREAMGEN_WORKER_COMMIT_INTERVAL_MS": "200",
        "STREAMGEN_WORKER_SESSION_TIMEOUT_MS": "6000",
    }
    log_file = tmp_path / "fleet.log"
    with log_file.open("w") as log:
        fleet = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamgen",
                "fleet",
                "--workers",
                "1",
                "--model",
                f"tiny={model}",
                "--store",
                f"file://{tmp_path / 'images'}",
                "--group-id",
                f"fleet-{uuid.uuid4().hex[:6]}",
                "--metrics-base-port",
                "0",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: log_file.read_text().count("started as pid") >= 1, "the worker", 60)
        pid = int(log_file.read_text().split("worker 0 (cpu) started as pid ")[1].split()[0])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: "killed by SIGKILL — out of memory?" in log_file.read_text(), "the log")
        wait_for(
            lambda: log_file.read_text().count("worker 0 (cpu) started as pid") == 2,
            "the restart",
            30,
        )
        requests = [make_request(i) for i in range(6)]
        publish(s, requests)
        results = consume_all(s.kafka.bootstrap_servers, s.topics.results, expected=6, timeout=120)
        assert {m.key().decode() for m in results} >= {r.request_id for r in requests}
        fleet.send_signal(signal.SIGTERM)
        assert fleet.wait(120) == 0, log_file.read_text()[-3000:]
    finally:
        if fleet.poll() is None:
            fleet.kill()
    text = log_file.read_text()
    assert "draining 1 workers" in text
