"""What tenants' caps set aside in the chaos fleet (scenario 16), read from each worker's own
/metrics: ``streamgen_tenant_deferred{tenant}``, the records a worker holds aside because their
tenant is at its cap (worker.tenant_max_in_flight). A scenario that means to crash workers while
records are set aside proves with it that they were, so it cannot pass without deferrals.

Each worker gets a port of its own (a restarted one a new port: the dead one's may linger); a
background thread scrapes every worker's endpoint in turn and keeps the most it saw at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from streamgen.local.process import free_ports
from streamgen.settings import Settings
from tests.chaos.harness.scrape import scrape, total

__all__ = ["DeferralWatch", "set_aside"]

GAUGE = "streamgen_tenant_deferred"


def set_aside(port: int, timeout: float = 2.0) -> int | None:
    """Records the worker on ``port`` holds aside, all tenants together; None: no answer (not
    serving yet, or dead)."""
    samples = scrape(port, timeout)
    if samples is None:
        return None
    return int(total(samples, GAUGE))


class DeferralWatch:
    def __init__(self, interval_s: float = 0.2) -> None:
        self._interval_s = interval_s
        self._ports: dict[str, int] = {}  # worker name -> its current /metrics port
        self._lock = threading.Lock()
        self.most = 0  # the most records one worker held aside at one scrape
        self.scrapes_with_deferrals = 0
        self.at_kills: list[int] = []  # set aside on each victim at the scrape before its kill
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-deferrals", daemon=True)

    def __enter__(self) -> DeferralWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def settings_for(self, settings: Settings, name: str) -> Settings:
        """``settings`` for a (re)start of worker ``name``: a /metrics port of its own."""
        [port] = free_ports(1)
        with self._lock:
            self._ports[name] = port
        return replace(settings, worker=replace(settings.worker, metrics_port=port))

    def wait_deferring(self, name: str, timeout: float) -> int:
        """Wait until worker ``name`` holds records aside; the count, also kept in at_kills
        (the caller kills it next)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self._scrape(name)
            if n:
                self.at_kills.append(n)
                return n
            time.sleep(0.05)
        raise AssertionError(
            f"worker {name} held no records aside for {timeout:.0f}s: the flood never reached "
            f"its tenant's cap, so the scenario did not happen (most seen: {self.most})"
        )

    def _scrape(self, name: str) -> int | None:
        with self._lock:
            port = self._ports[name]
        n = set_aside(port)
        if n:
            with self._lock:
                self.most = max(self.most, n)
                self.scrapes_with_deferrals += 1
        return n

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            with self._lock:
                names = list(self._ports)
            for name in names:
                self._scrape(name)
