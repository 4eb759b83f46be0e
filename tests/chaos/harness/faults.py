"""Fault injectors against the real local stack. Each returns when the fault has healed and
says when that was (time.monotonic()), so recovery is measured from the heal, not the fault."""

from __future__ import annotations

import os
import random
import signal
import time

from streamgen.local.stack import LocalStack
from tests.chaos.harness.workers import WorkerProcess

__all__ = [
    "freeze_worker",
    "kill_at_random",
    "minio_slow",
    "restart_broker",
]


def kill_at_random(worker: WorkerProcess, rng: random.Random, low: float, high: float) -> float:
    """kill -9 the worker at a random instant in [low, high] seconds from now."""
    time.sleep(rng.uniform(low, high))
    worker.kill9()
    return time.monotonic()


def restart_broker(stack: LocalStack, down_s: float) -> float:
    """Stop the Kafka process, keep it down for ``down_s``, start it on the same port and data."""
    stack.stop_kafka()
    try:
        time.sleep(down_s)
    finally:
        stack.start_kafka()
    return time.monotonic()


def minio_slow(stack: LocalStack, stalls: int, stall_s: float, gap_s: float) -> float:
    """MinIO answering slowly: SIGSTOP it for ``stall_s`` at a time (connections hang instead
    of being refused, the harder case for a client), ``stalls`` times, ``gap_s`` apart."""
    pid = stack.minio.pid()
    if pid is None:
        raise AssertionError("MinIO is not running")
    for _ in range(stalls):
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(stall_s)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(gap_s)
    return time.monotonic()


def freeze_worker(worker: WorkerProcess, frozen_s: float) -> float:
    """SIGSTOP a worker (consumer thread and librdkafka's heartbeats with it), then SIGCONT."""
    worker.freeze()
    try:
        time.sleep(frozen_s)
    finally:
        worker.thaw()
    return time.monotonic()
