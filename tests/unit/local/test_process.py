"""Process bookkeeping of the local stack, on real (harmless) `sleep` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamgen.local.process import (
    LocalStackError,
    ensure_port_free,
    free_ports,
    is_alive,
    require_tool,
    running_pid,
    spawn,
    stop,
    wait_until,
)


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    pid_file = tmp_path / "sleep.pid"
    pid = spawn(["sleep", "300"], pid_file=pid_file, log_file=tmp_path / "sleep.log")
    yield pid, pid_file
    if is_alive(pid):
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_spawn_writes_the_pid_and_stop_ends_the_process(sleeper: tuple[int, Path]) -> None:
    pid, pid_file = sleeper
    assert pid_file.read_text().strip() == str(pid)
    # Right after the fork the child's command line is still ours, until it execs `sleep`.
    deadline = time.monotonic() + 10
    while running_pid(pid_file, "sleep 300") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_pid(pid_file, "sleep 300") == pid
    assert os.getsid(pid) == pid  # its own session: a Ctrl-C in our shell does not reach it
    assert stop(pid_file, "sleep 300", grace=5) is True
    assert not is_alive(pid)
    assert not pid_file.exists()


def test_a_pid_whose_command_line_does_not_match_is_left_alone(
    sleeper: tuple[int, Path],
) -> None:
    pid, pid_file = sleeper
    assert running_pid(pid_file, "kafka.Kafka /some/state/dir") is None
    assert stop(pid_file, "kafka.Kafka /some/state/dir") is False
    assert is_alive(pid)


def test_a_stale_pid_file_counts_as_stopped(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid_file = tmp_path / "gone.pid"
    pid_file.write_text(done.stdout)
    assert running_pid(pid_file, "python") is None
    assert stop(pid_file, "python") is False
    assert not pid_file.exists()


def test_a_missing_tool_says_what_to_install() -> None:
    with pytest.raises(LocalStackError, match="not found on PATH; apt-get install nothing"):
        require_tool("streamgen-no-such-tool", "apt-get install nothing")


def test_free_ports_are_distinct_and_a_taken_port_is_reported() -> None:
    ports = free_ports(4)
    assert len(set(ports)) == 4
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", ports[0]))
        listener.listen()
        with pytest.raises(LocalStackError, match=f"port {ports[0]} for Kafka"):
            ensure_port_free(ports[0], "Kafka")
    ensure_port_free(ports[0], "Kafka")


def test_wait_until_fails_early_when_the_server_died(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("line one\nbind: address already in use\n")
    with pytest.raises(LocalStackError, match=r"exited during start-up(.|\n)*address already"):
        wait_until(lambda: False, timeout=60, what="Thing", alive=lambda: False, log_file=log)
