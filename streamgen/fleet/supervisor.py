"""What ``streamgen fleet`` runs and when it restarts a worker (pure: no processes here).

One worker per GPU, each pinned with ``CUDA_VISIBLE_DEVICES``, with a worker id and static
group membership id derived from host and device, and a metrics port of its own. A worker that
dies is restarted after an exponential backoff; one that crashes ``max_crashes`` times within
``window_s`` is given up on while the others keep running.
:mod:`streamgen.fleet.processes` owns the processes.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from streamgen.exit_codes import EXIT_CONFIG

__all__ = [
    "ExitDecision",
    "RestartPolicy",
    "Supervisor",
    "WorkerSlot",
    "describe_exit",
    "plan_slots",
]


@dataclass(frozen=True)
class WorkerSlot:
    """One worker process of the fleet (kept across its restarts)."""

    index: int
    device: Literal["cuda", "cpu"]
    gpu: int | None  # physical GPU id for CUDA workers
    worker_id: str  # also its group.instance.id: a restart rejoins without a rebalance
    metrics_port: int  # 0: no /metrics
    env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"worker {self.index} ({'gpu ' + str(self.gpu) if self.gpu is not None else 'cpu'})"

    def settings_overrides(self) -> dict[str, object]:
        return {
            "worker.worker_id": self.worker_id,
            "worker.group_instance_id": self.worker_id,
            "worker.metrics_port": self.metrics_port,
            "engine.device": self.device,
        }


def plan_slots(
    *,
    gpus: str | None,
    workers: int | None,
    device_count: int,
    host: str,
    metrics_base_port: int = 0,
) -> list[WorkerSlot]:
    """The workers to run: ``gpus`` ("all" or "0,1,3") or ``workers`` CPU processes."""
    if gpus is not None and workers is not None:
        raise ValueError("--gpus and --workers are exclusive: GPU workers or CPU workers")
    if gpus is None and workers is None:
        gpus = "all" if device_count > 0 else None
        workers = None if device_count > 0 else 1
    if not 0 <= metrics_base_port <= 65535:
        raise ValueError(f"--metrics-base-port must be in 0..65535, got {metrics_base_port}")

    def port(index: int) -> int:
        return metrics_base_port + index if metrics_base_port else 0

    if workers is not None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        return [
            WorkerSlot(
                index=i,
                device="cpu",
                gpu=None,
                worker_id=f"{host}-cpu{i}",
                metrics_port=port(i),
                # Hidden GPUs: a CPU worker must never initialise CUDA on a GPU host.
                env={"CUDA_VISIBLE_DEVICES": ""},
            )
            for i in range(workers)
        ]
    assert gpus is not None
    ids = _gpu_ids(gpus, device_count)
    return [
        WorkerSlot(
            index=i,
            device="cuda",
            gpu=gpu,
            worker_id=f"{host}-gpu{gpu}",
            metrics_port=port(i),
            env={"CUDA_VISIBLE_DEVICES": str(gpu)},
        )
        for i, gpu in enumerate(ids)
    ]


def _gpu_ids(gpus: str, device_count: int) -> list[int]:
    text = gpus.strip().lower()
    if text == "all":
        if device_count == 0:
            raise ValueError(
                "--gpus all: no CUDA device found (torch.cuda.device_count() is 0); "
                "use --workers N for CPU workers"
            )
        return list(range(device_count))
    ids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part.isdigit():
            raise ValueError(f"--gpus: expected 'all' or ids like 0,1,3, got {gpus!r}")
        gpu = int(part)
        if gpu >= device_count:
            raise ValueError(
                f"--gpus: GPU {gpu} does not exist; this host has {device_count} "
                f"(ids 0..{device_count - 1})"
                if device_count
                else f"--gpus: GPU {gpu} does not exist; this host has no CUDA device"
            )
        if gpu in ids:
            raise ValueError(f"--gpus: GPU {gpu} listed twice in {gpus!r}")
        ids.append(gpu)
    return ids


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "is still running"
    if exitcode == 0:
        return "exited cleanly"
    if exitcode == -signal.SIGKILL:
        # The kernel's OOM killer (or the container's memory limit) sends SIGKILL; it is by
        # far the most common sender on a GPU host.
        return "killed by SIGKILL — out of memory?"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}"
    return f"exited with code {exitcode}"


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_crashes: int = 5  # within window_s: then the worker is given up on
    window_s: float = 300.0

    def __post_init__(self) -> None:
        if self.initial_backoff_s <= 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s")
        if self.max_crashes < 1:
            raise ValueError(f"max_crashes must be >= 1, got {self.max_crashes}")
        if self.window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {self.window_s}")


@dataclass(frozen=True)
class ExitDecision:
    action: Literal["restart", "give_up", "finished"]
    delay_s: float
    message: str  # the log line


class Supervisor:
    """Decides, for each worker exit, whether and when to restart it."""

    def __init__(self, policy: RestartPolicy | None = None) -> None:
        self.policy = policy or RestartPolicy()
        self._crashes: dict[int, deque[float]] = {}

    def crashes(self, index: int, now: float) -> int:
        """Crashes of worker ``index`` within the window ending at ``now``."""
        recent = self._crashes.setdefault(index, deque())
        while recent and now - recent[0] > self.policy.window_s:
            recent.popleft()
        return len(recent)

    def exited(
        self, slot: WorkerSlot, exitcode: int | None, now: float, *, stopping: bool
    ) -> ExitDecision:
        how = describe_exit(exitcode)
        if stopping:
            return ExitDecision("finished", 0.0, f"{slot.label} {how} (fleet stopping)")
        if exitcode == 0:
            # A worker only exits 0 after draining on a signal of its own: respect that.
            return ExitDecision("finished", 0.0, f"{slot.label} {how}; not restarted")
        if exitcode == EXIT_CONFIG:
            # Its log names the setting; restarting with the same settings fails the same way.
            return ExitDecision(
                "give_up",
                0.0,
                f"{slot.label} {how} (misconfiguration at start-up, see its log); not "
                "restarted — the other workers keep running",
            )
        self._crashes.setdefault(index := slot.index, deque()).append(now)
        count = self.crashes(index, now)
        p = self.policy
        if count >= p.max_crashes:
            return ExitDecision(
                "give_up",
                0.0,
                f"{slot.label} {how}; giving up on it after {count} crashes within "
                f"{p.window_s:.0f}s — the other workers keep running",
            )
        delay = min(p.initial_backoff_s * 2 ** (count - 1), p.max_backoff_s)
        return ExitDecision(
            "restart",
            delay,
            f"{slot.label} {how}; restarting in {delay:.1f}s (crash {count} of "
            f"{p.max_crashes} allowed within {p.window_s:.0f}s)",
        )
