"""A pyinstrument profile of every Python thread of the worker, not only the main one.

pyinstrument samples the thread that started it. The worker's work is spread over the consumer
thread, the GPU thread and the output pool, so while profiling, each thread's ``run`` is wrapped
to start a profiler of its own and hand the session back when the thread ends; the sessions
are then combined into one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pyinstrument import Profiler
from pyinstrument.session import Session

__all__ = ["ThreadProfiles", "profile_threads"]


class ThreadProfiles:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.sessions: list[Session] = []

    def wrap(self, run: Callable[[Any], None]) -> Callable[[Any], None]:
        def profiled_run(thread: Any) -> None:
            profiler = Profiler(interval=0.001)
            with self._lock:
                self.started += 1
            profiler.start()
            try:
                run(thread)
            finally:
                profiler.stop()
                with self._lock:
                    if profiler.last_session is not None:
                        self.sessions.append(profiler.last_session)

        return profiled_run

    def combined(self, wait_s: float = 10.0) -> Session:
        """All sessions, once every profiled thread has ended (or ``wait_s`` has passed)."""
        deadline = time.monotonic() + wait_s
        while len(self.sessions) < self.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            if not self.sessions:
                raise RuntimeError("no thread was profiled")
            session = self.sessions[0]
            for other in self.sessions[1:]:
                session = Session.combine(session, other)
        return session


@contextmanager
def profile_threads(*thread_classes: type[threading.Thread]) -> Iterator[ThreadProfiles]:
    """Profile every thread of these classes (and their subclasses that keep ``run``) started
    inside the block."""
    profiles = ThreadProfiles()
    originals = {cls: cls.run for cls in thread_classes}
    for cls, run in originals.items():
        cls.run = profiles.wrap(run)  # type: ignore[method-assign,assignment]
    try:
        yield profiles
    finally:
        for cls, run in originals.items():
            cls.run = run  # type: ignore[method-assign]
