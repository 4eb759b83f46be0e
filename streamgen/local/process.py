"""Start, find and stop the local stack's server processes by pid file.

Each server runs in its own session (so a Ctrl-C in the shell that ran ``streamgen dev up`` does
not reach it) and is known by a pid file. Before a pid is signalled its command line is checked
for a marker unique to this state dir: a stale pid file must never kill an unrelated process that
happens to have inherited the number.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LocalStackError",
    "ServerProcess",
    "ensure_port_free",
    "free_ports",
    "is_alive",
    "port_accepts",
    "read_pid",
    "require_tool",
    "running_pid",
    "spawn",
    "stop",
    "wait_until",
]


class LocalStackError(RuntimeError):
    """The local stack cannot be prepared, started or stopped; the message says what to do."""


def require_tool(name: str, install_hint: str) -> str:
    """Return the path of ``name`` on PATH, or explain how to install it."""
    path = shutil.which(name)
    if path is None:
        raise LocalStackError(f"`{name}` was not found on PATH; {install_hint}")
    return path


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now (for tests).

    All sockets stay bound until every port is chosen, so the kernel cannot hand one out twice.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_port_free(port: int, component: str) -> None:
    """Fail with a clear message when another process already listens on ``port``."""
    if port_accepts(port):
        raise LocalStackError(
            f"port {port} for {component} is already in use by another process; "
            "stop it or choose other ports (see `streamgen dev up --help`)"
        )


def spawn(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached in its own session, stdout/stderr appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    # A child of this very process that has exited stays a zombie until reaped, and a zombie
    # still answers kill(pid, 0): reap it first so it counts as gone.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    # The process lives while any of its threads does. Checking only the leader is wrong for
    # Java: once main() returns, the leader thread shows as a zombie ("Z") while the broker's
    # other threads keep serving.
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        # The state letter follows the parenthesised command name; "Z" zombie, "X" dead.
        if stat.rpartition(")")[2].split()[0] not in {"Z", "X"}:
            return True
    return False


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line holds ``marker``."""
    pid = read_pid(pid_file)
    if pid is None or not is_alive(pid) or marker not in _cmdline(pid):
        return None
    return pid


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
    log_file: Path | None = None,
) -> None:
    """Poll ``ready`` until it holds; fail early if ``alive`` turns false (the server died)."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        hint = f"; see {log_file}{_tail(log_file)}" if log_file is not None else ""
        if not alive():
            raise LocalStackError(f"{what} exited during start-up{hint}")
        if time.monotonic() > deadline:
            raise LocalStackError(f"{what} was not ready after {timeout:.0f}s{hint}")
        time.sleep(0.2)


@dataclass(frozen=True)
class ServerProcess:
    """Where one of the stack's servers keeps its pid, how its process is recognised, and what
    it needs free: the part of starting and stopping that Kafka, MinIO and the registry share.

    ``marker`` is a string only this server's command line holds (an absolute path of its
    state dir), so a stale pid file or a stranger on the port is never taken for it.
    """

    name: str  # for messages: "Kafka on 127.0.0.1:9092"
    component: str  # for the port check: "Kafka"
    pid_file: Path
    marker: str
    ports: tuple[int, ...]
    log_file: Path
    start_timeout_s: float

    def pid(self) -> int | None:
        return running_pid(self.pid_file, self.marker)

    def start(self, launch: Callable[[], int], ready: Callable[[], bool]) -> None:
        """Unless the process already runs: check its ports are free and ``launch`` it (which
        returns its pid); then wait until ``ready``, failing early if it exits."""
        pid = self.pid()
        if pid is None:
            for port in self.ports:
                ensure_port_free(port, self.component)
            pid = launch()
        started = pid
        wait_until(
            ready,
            timeout=self.start_timeout_s,
            what=self.name,
            alive=lambda: is_alive(started),
            log_file=self.log_file,
        )

    def stop(self, *, grace: float = 30.0) -> bool:
        return stop(self.pid_file, self.marker, grace=grace)


def _tail(log_file: Path, lines: int = 15) -> str:
    try:
        last = log_file.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  | {line}" for line in last)


def stop(pid_file: Path, marker: str, *, grace: float = 30.0) -> bool:
    """Stop the process named by ``pid_file`` (SIGTERM, then SIGKILL after ``grace`` seconds).

    Returns whether a process was stopped; a stale or foreign pid is left alone.
    """
    pid = running_pid(pid_file, marker)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    # The server leads its own process group (start_new_session), so signal the whole group
    # and leave no helper children behind.
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not is_alive(pid):
            break
    else:
        raise LocalStackError(f"process {pid} ({marker}) survived SIGKILL")
    pid_file.unlink(missing_ok=True)
    return True
