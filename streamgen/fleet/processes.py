"""The fleet's processes: spawn one child per :class:`WorkerSlot`, restart, stop, drain.

Children use the ``spawn`` start method: a forked child would inherit the parent's CUDA state
(and torch's threads), which CUDA does not support. Each child sets ``CUDA_VISIBLE_DEVICES``
before anything imports torch, so its GPU is ``cuda:0`` inside it.

SIGTERM or SIGINT to the fleet is forwarded to every child, which drains (finishes in-flight
batches, commits) and exits; a second signal is forwarded too, which makes the workers stop at
once. Children still alive ``stop_timeout_s`` after the first signal are killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from streamgen.fleet.supervisor import Supervisor, WorkerSlot

__all__ = ["ChildTarget", "Fleet", "run_worker_slot"]

log = logging.getLogger(__name__)

# A child target gets its slot and the settings overrides; it returns the exit code.
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

ChildTarget = Callable[[WorkerSlot, Mapping[str, Any], "str | None"], int]


def run_worker_slot(slot: WorkerSlot, overrides: Mapping[str, Any], config_file: str | None) -> int:
    """The default child: a streamgen worker with this slot's identity, port and device."""
    from streamgen.configuration import load_settings
    from streamgen.telemetry.tracing_setup import tracing_from_env
    from streamgen.worker.run import run_worker

    settings = load_settings({**overrides, **slot.settings_overrides()}, config_file=config_file)
    with tracing_from_env("streamgen-worker"):
        return run_worker(settings)


def _child_main(
    target: ChildTarget,
    slot: WorkerSlot,
    overrides: Mapping[str, Any],
    config_file: str | None,
    log_level: int,
) -> None:
    os.environ.update(slot.env)  # first: before the target imports torch
    # Own process group: a terminal's Ctrl-C reaches only the fleet, which forwards exactly one
    # SIGTERM; reaching the worker directly too would count as the "stop at once" second signal.
    os.setpgid(0, 0)
    _terminate_with_parent()
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s %(levelname)s [{slot.worker_id}] %(name)s: %(message)s",
    )
    raise SystemExit(target(slot, overrides, config_file))


def _terminate_with_parent() -> None:
    """Linux: SIGTERM this child (so it drains) if the fleet dies without forwarding a stop."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: a SIGKILLed fleet leaves its workers to be stopped by hand


class Fleet:
    def __init__(
        self,
        slots: Sequence[WorkerSlot],
        *,
        supervisor: Supervisor,
        overrides: Mapping[str, Any] | None = None,
        config_file: str | None = None,
        target: ChildTarget = run_worker_slot,
        stop_timeout_s: float = 90.0,
        on_start: Callable[[WorkerSlot, int], None] | None = None,
    ) -> None:
        if not slots:
            raise ValueError("a fleet needs at least one worker slot")
        self.slots = list(slots)
        self.supervisor = supervisor
        self._overrides = dict(overrides or {})
        self._config_file = config_file
        self._target = target
        self._stop_timeout_s = stop_timeout_s
        self._on_start = on_start
        self._context = multiprocessing.get_context("spawn")
        self._running: dict[int, BaseProcess] = {}
        self._restart_at: dict[int, float] = {}
        self.given_up: set[int] = set()
        self._signals = 0
        self._forwarded = 0

    # -- control -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Drain every worker (a second call stops them at once). Signal-handler safe."""
        self._signals += 1

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("fleet got %s", signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped (0 if every worker drained cleanly) or until no worker is left
        (1 if any was given up on)."""
        for slot in self.slots:
            self._start(slot)
        stop_deadline: float | None = None
        clean = True
        while True:
            now = time.monotonic()
            if self._signals > self._forwarded:
                self._forward_stop()
                stop_deadline = stop_deadline or now + self._stop_timeout_s
            if stop_deadline is not None and not self._running:
                return 0 if clean else 2
            if stop_deadline is None and not self._running and not self._restart_at:
                return 1 if self.given_up else 0
            if stop_deadline is not None and now >= stop_deadline:
                self._kill_remaining()
                stop_deadline = math.inf  # killed once; the loop ends when they are reaped
                clean = False
            for slot in self.slots:
                due = self._restart_at.get(slot.index)
                if due is not None and due <= now and stop_deadline is None:
                    del self._restart_at[slot.index]
                    self._start(slot)
            timeout = min([0.5, *(max(t - now, 0.0) for t in self._restart_at.values())])
            ready = wait([p.sentinel for p in self._running.values()], timeout)
            for index, process in list(self._running.items()):
                if process.sentinel in ready:
                    clean = self._reap(index, process, stopping=stop_deadline is not None) and clean

    def _start(self, slot: WorkerSlot) -> None:
        process = self._context.Process(
            target=_child_main,
            args=(self._target, slot, self._overrides, self._config_file, log.getEffectiveLevel()),
            name=f"streamgen-{slot.worker_id}",
        )
        process.start()
        self._running[slot.index] = process
        log.info("%s started as pid %s (%s)", slot.label, process.pid, slot.worker_id)
        if self._on_start is not None and process.pid is not None:
            self._on_start(slot, process.pid)

    def _reap(self, index: int, process: BaseProcess, *, stopping: bool) -> bool:
        process.join()
        del self._running[index]
        slot = self.slots[index]
        decision = self.supervisor.exited(
            slot, process.exitcode, time.monotonic(), stopping=stopping
        )
        if decision.action == "restart":
            log.warning(decision.message)
            self._restart_at[index] = time.monotonic() + decision.delay_s
        elif decision.action == "give_up":
            log.error(decision.message)
            self.given_up.add(index)
        else:
            log.info(decision.message)
        # Only exits during a stop decide the fleet's exit code; crashes before were handled.
        return process.exitcode == 0 or not stopping

    def _forward_stop(self) -> None:
        self._forwarded = self._signals
        self._restart_at.clear()  # a worker waiting for its restart stays down
        verb = "draining" if self._forwarded == 1 else "stopping now"
        log.info("%s %d workers", verb, len(self._running))
        for process in self._running.values():
            if process.pid is not None:
                _signal(process.pid, signal.SIGTERM)

    def _kill_remaining(self) -> None:
        for index, process in self._running.items():
            if process.pid is not None:
                log.error(
                    "%s did not stop within %.0fs; killing it (its work will be redone)",
                    self.slots[index].label,
                    self._stop_timeout_s,
                )
                _signal(process.pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    # ProcessLookupError: it exited meanwhile; its sentinel is reaped on the next turn.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
