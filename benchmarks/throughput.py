"""A measured run: how many requests, how long, how much CPU time this process spent."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["Clock", "Throughput"]


@dataclass(frozen=True)
class Throughput:
    label: str
    requests: int
    seconds: float  # wall time from the first record received to the last commit
    cpu_seconds: float  # this process (all threads, librdkafka's included) over that time
    system_seconds: float = 0.0  # of which in the kernel (fsync, sockets)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / self.requests if self.requests else float("nan")

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "label": self.label,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.requests_per_s, 1),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_ms_per_request": round(self.cpu_ms_per_request, 3),
            "kernel_cpu_ms_per_request": round(1000 * self.system_seconds / self.requests, 3),
        }


class Clock:
    """Wall and process-CPU time, started at the first record and read at the end."""

    def __init__(self) -> None:
        self.started_wall: float | None = None
        self.started_cpu = 0.0
        self.started_system = 0.0

    def start_once(self) -> None:
        if self.started_wall is None:
            self.started_cpu = time.process_time()
            self.started_system = os.times().system
            self.started_wall = time.perf_counter()

    def result(self, label: str, requests: int) -> Throughput:
        if self.started_wall is None:
            raise RuntimeError(f"{label}: no record was ever received")
        return Throughput(
            label,
            requests,
            time.perf_counter() - self.started_wall,
            time.process_time() - self.started_cpu,
            os.times().system - self.started_system,
        )
