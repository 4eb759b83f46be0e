"""What the share-group benchmark runs each scenario with: N real workers, each its own member
of the group (consumer group or share group) through the real broker and file store, and a
reader of the results topic that notes when each result arrived.

The workers are ``run_worker`` in threads of one process, as the other real-broker benchmarks
run theirs (``benchmarks.worker_run``): each has its own consumer, producer, GPU thread, output
threads, metrics and engine. The engine sleeps (``benchmarks.fixed_cost``), so the threads
contend for the GIL only for the loop's own work.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks.broker_bench import results_consumer
from benchmarks.fixed_cost import FixedCostEngine
from streamgen.contracts.codec import result_codec
from streamgen.settings import Settings
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.run import run_worker

__all__ = ["ResultReader", "WorkerFleet", "running_fleet"]

JOIN_TIMEOUT_S = 90.0  # every worker in its group: the share probe (3 s) and a join each
# After the last worker is READY, a consumer group's cooperative rebalance may still be moving
# partitions; requests published now would be measured through it.
SETTLE_S = 3.0
STOP_TIMEOUT_S = 60.0

SHARE_COUNTERS = {  # the share loop's counters (streamgen/telemetry/share_metrics.py), summed
    "accepted": ("streamgen_share_records_total", {"ack": "accept"}),
    "released": ("streamgen_share_records_total", {"ack": "release"}),
    "excess_released": ("streamgen_share_excess_released_total", {}),
    "requeued": ("streamgen_share_requeued_total", {}),
    "lock_overruns": ("streamgen_share_lock_overruns_total", {}),
    "ack_failures": ("streamgen_share_ack_failures_total", {}),
    "delivery_limit": ("streamgen_share_delivery_limit_total", {}),
}


class _ReadyHooks(WorkerHooks):
    """The worker's own hooks, keeping the lifecycle's readiness (``/ready``'s answer)."""

    ready: Callable[[], tuple[bool, str]] = staticmethod(lambda: (False, "starting"))

    def serve(self, ready: Callable[[], tuple[bool, str]] | None = None) -> None:
        if ready is not None:
            self.ready = ready
        super().serve(ready)


@dataclass
class WorkerFleet:
    hooks: list[_ReadyHooks]
    exit_codes: dict[str, int] = field(default_factory=dict)
    joined_s: float = 0.0  # from the first start to the last worker READY

    def counters(self) -> dict[str, float]:
        """The share loop's counters summed over the workers (all 0 in group mode)."""
        return {
            key: sum(h.metrics.registry.get_sample_value(name, labels) or 0.0 for h in self.hooks)
            for key, (name, labels) in SHARE_COUNTERS.items()
        }


@contextmanager
def running_fleet(
    settings: Settings, workers: int, engine: Callable[[], FixedCostEngine]
) -> Iterator[WorkerFleet]:
    """``workers`` workers started, each with an engine of its own, all READY and settled;
    stopped (drained) on exit, their exit codes in the fleet."""
    stop = threading.Event()
    fleet = WorkerFleet(hooks=[])
    threads = []
    started = time.monotonic()
    for n in range(1, workers + 1):
        worker_id = f"w{n}"
        each = replace(settings, worker=replace(settings.worker, worker_id=worker_id))
        hooks = _ReadyHooks(
            Metrics(models=set(settings.engine.models) | {"default"}),
            worker_id=worker_id,
            host="bench",
            group_id=settings.worker.group_id,
            device="fixed-cost",
        )
        fleet.hooks.append(hooks)

        def target(each: Settings = each, hooks: _ReadyHooks = hooks, wid: str = worker_id) -> None:
            fleet.exit_codes[wid] = run_worker(
                each, engine=engine(), hooks=hooks, install_signal_handlers=False, stop=stop
            )

        threads.append(threading.Thread(target=target, name=f"bench-{worker_id}", daemon=True))
        threads[-1].start()
    try:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not all(h.ready()[0] for h in fleet.hooks):
            if time.monotonic() > deadline or len(fleet.exit_codes) > 0:
                states = [h.ready()[1] for h in fleet.hooks]
                raise RuntimeError(f"workers not READY: {states}, exits {fleet.exit_codes}")
            time.sleep(0.05)
        fleet.joined_s = round(time.monotonic() - started, 2)
        time.sleep(SETTLE_S)
        yield fleet
    finally:
        stop.set()
        for thread in threads:
            thread.join(STOP_TIMEOUT_S)


class ResultReader:
    """Reads the results topic (one partition) from its start in a thread: each request id's
    read times (more than one: a redo), the worker that served it, and the statuses."""

    def __init__(self, settings: Settings) -> None:
        self.read: dict[str, list[float]] = defaultdict(list)
        self.served_by: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.status: dict[str, str] = {}  # each request's last result's status
        self.errors: Counter[str] = Counter()  # the error codes of results not SUCCEEDED
        self._settings = settings
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bench-reader", daemon=True)

    def __enter__(self) -> ResultReader:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_for(self, ids: set[str], timeout_s: float) -> bool:
        """True once every id has a result; False at the timeout (requests lost or stalled)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if ids <= self.read.keys():
                    return True
            time.sleep(0.05)
        return False

    def snapshot(self) -> dict[str, list[float]]:
        with self._lock:
            return {k: list(v) for k, v in self.read.items()}

    def _run(self) -> None:
        settings = self._settings
        codec = result_codec(settings.kafka, settings.topics.results)
        consumer = results_consumer(settings)
        try:
            while not self._stop.is_set():
                for message in consumer.consume(500, 0.05):
                    if message.error() is not None:
                        continue
                    at = time.time()
                    result = codec.decode(message.value())
                    with self._lock:
                        self.read[result.request_id].append(at)
                        self.served_by[result.worker.worker_id] += 1
                        self.statuses[result.status] += 1
                        self.status[result.request_id] = result.status
                        if result.error is not None:
                            error = result.error
                            self.errors[f"{error.code} ({error.stage}): {error.message}"] += 1
        finally:
            consumer.close()
