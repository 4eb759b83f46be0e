"""How much GPU time a backlog of requests will take: pure arithmetic, no I/O.

A message count says little to someone paying for GPUs: one 1024x1024, 50-step request costs
as much as forty 512x512, 20-step ones. The unit of work here is the *pixel-step*
(``steps x width x height x num_images``), which the UNet's cost is close to linear in, and the
measured throughput is pixel-steps per GPU-second. ``streamgen lag`` and the worker's
``streamgen_backlog_gpu_seconds`` gauge both use these functions.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = [
    "BacklogEstimate",
    "RollingMean",
    "ThroughputWindow",
    "WorkerBacklog",
    "backlog_estimate",
    "pixel_steps",
]


def pixel_steps(steps: int, width: int, height: int, num_images: int = 1) -> int:
    """The work of one request, in pixel-steps."""
    for name, value in (
        ("steps", steps),
        ("width", width),
        ("height", height),
        ("num_images", num_images),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    return steps * width * height * num_images


@dataclass(frozen=True)
class BacklogEstimate:
    """The unprocessed work of a group, in GPU time and in wall time."""

    messages: int
    pixel_steps: float  # total work of the unprocessed requests (sampled and extrapolated)
    throughput: float | None  # pixel-steps per GPU-second; None when nothing was measured yet
    gpu_seconds: float | None  # pixel_steps / throughput
    drain_rate: float | None  # messages per wall second the group is consuming now
    drain_seconds: float | None  # messages / drain_rate; inf when the group consumes nothing


def backlog_estimate(
    *,
    messages: int,
    pixel_steps_total: float,
    throughput: float | None,
    drain_rate: float | None,
) -> BacklogEstimate:
    """Combine lag, its work, the measured throughput and the consumption rate."""
    if messages < 0:
        raise ValueError(f"messages must be >= 0, got {messages}")
    gpu_seconds = pixel_steps_total / throughput if throughput else None
    if messages == 0:
        drain_seconds: float | None = 0.0
    elif drain_rate is None:
        drain_seconds = None
    elif drain_rate <= 0:
        drain_seconds = math.inf  # nobody is consuming: the backlog never drains
    else:
        drain_seconds = messages / drain_rate
    return BacklogEstimate(
        messages=messages,
        pixel_steps=pixel_steps_total,
        throughput=throughput,
        gpu_seconds=gpu_seconds,
        drain_rate=drain_rate,
        drain_seconds=drain_seconds,
    )


class ThroughputWindow:
    """Pixel-steps per GPU-second over the last ``size`` observations; thread-safe.

    A window rather than a lifetime mean, so the estimate follows a change of model or of
    request mix within minutes.
    """

    def __init__(self, size: int = 256) -> None:
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        self._samples: deque[tuple[float, float]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def observe(self, work: float, gpu_seconds: float) -> None:
        """One batch (or one result): ``work`` pixel-steps done in ``gpu_seconds``."""
        if work < 0 or gpu_seconds < 0:
            raise ValueError(f"work and gpu_seconds must be >= 0, got {work}, {gpu_seconds}")
        if gpu_seconds == 0:
            return  # a cached or empty batch says nothing about speed
        with self._lock:
            self._samples.append((work, gpu_seconds))

    def throughput(self) -> float | None:
        with self._lock:
            work = sum(w for w, _ in self._samples)
            seconds = sum(s for _, s in self._samples)
        return work / seconds if seconds > 0 and work > 0 else None


class RollingMean:
    """Mean of the last ``size`` values (e.g. the pixel-steps of recently consumed requests)."""

    def __init__(self, size: int = 256) -> None:
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(value)

    def mean(self) -> float | None:
        with self._lock:
            return sum(self._values) / len(self._values) if self._values else None


class WorkerBacklog:
    """One worker's backlog in GPU-seconds: the commit lag of its partitions x the mean cost of
    its recent requests / the throughput of its recent batches. Thread-safe; the worker's
    :class:`~streamgen.telemetry.metrics.Metrics` exports it as a gauge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lag: dict[tuple[str, int], int] = {}
        self._throughput = ThroughputWindow()
        self._request_cost = RollingMean()

    def consumed(self, pixel_steps: int) -> None:
        """A request of this cost was taken from the topic."""
        self._request_cost.add(pixel_steps)

    def generated(self, pixel_steps: int, gpu_seconds: float) -> None:
        """A batch of this much work took this long on the GPU."""
        self._throughput.observe(pixel_steps, gpu_seconds)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        with self._lock:
            self._lag[(topic, partition)] = lag

    def forget(self, topic: str, partition: int) -> None:
        """The partition is no longer this worker's: its lag is someone else's backlog."""
        with self._lock:
            self._lag.pop((topic, partition), None)

    def gpu_seconds(self) -> float | None:
        """0 with no lag; None until both a cost and a throughput have been measured."""
        throughput = self._throughput.throughput()
        cost = self._request_cost.mean()
        with self._lock:
            messages = sum(self._lag.values())
        if messages == 0:
            return 0.0
        if throughput is None or cost is None:
            return None
        return messages * cost / throughput
