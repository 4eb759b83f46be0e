"""The worker's life, in one place: what phase it is in, whether it was asked to stop, the
first fatal error, and the exit code that follows from them.

    STARTING ─▶ WARMING ─▶ JOINING ─▶ READY ─▶ DRAINING ─▶ CLOSING ─▶ STOPPED
        │          │          │         │                     ▲      (or FAILED after a
        └──────────┴──────────┴─────────┴─────────────────────┘       fatal error or an
          misconfiguration or a bug at any point: FAILED              unfinished drain)

- STARTING: checks (broker, registry, store, model paths) and the model load;
- WARMING: compiling and capturing ``engine.warmup_shapes``;
- JOINING: subscribed, waiting for the group's first assignment (empty counts);
- READY: serving; ``/ready`` answers 200 only here, and only until a stop is asked for;
- DRAINING: a stop was asked for: in-flight work finishes within ``worker.drain_timeout_s``;
- CLOSING: generation has stopped; what is durable is committed, nothing else (THE RULE);
  output threads stop retrying from here on;
- STOPPED / FAILED: the process is about to exit with :attr:`Lifecycle.exit`.

Signals, the drain, ``/ready``, the exit code and the final log line all read this one object.
A stop request and a fatal error may come from any thread (signal handlers, the GPU and
output threads through the loop's events), so every read and change holds one lock.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import StrEnum

from streamgen.exit_codes import EXIT_CONFIG, EXIT_FATAL, EXIT_INCOMPLETE_DRAIN, EXIT_UNEXPECTED

__all__ = ["Exit", "Lifecycle", "Phase"]

log = logging.getLogger(__name__)


class Phase(StrEnum):
    STARTING = "starting"
    WARMING = "warming up"
    JOINING = "joining the consumer group"
    READY = "ready"
    DRAINING = "draining"
    CLOSING = "closing"
    STOPPED = "stopped"
    FAILED = "failed"


# The phases each phase may move on to; FAILED is reachable from every phase but the last two.
_NEXT: dict[Phase, tuple[Phase, ...]] = {
    Phase.STARTING: (Phase.WARMING,),
    Phase.WARMING: (Phase.JOINING,),
    Phase.JOINING: (Phase.READY, Phase.DRAINING, Phase.CLOSING),
    Phase.READY: (Phase.DRAINING, Phase.CLOSING),
    Phase.DRAINING: (Phase.CLOSING,),
    Phase.CLOSING: (Phase.STOPPED,),
    Phase.STOPPED: (),
    Phase.FAILED: (),
}
_ENDED = (Phase.STOPPED, Phase.FAILED)


@dataclass(frozen=True)
class Exit:
    """How the process ends: its exit code (``streamgen.exit_codes``) and why, in a few words."""

    code: int
    reason: str


class Lifecycle:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase = Phase.STARTING
        self._stop_requests = 0
        self._fatal: BaseException | None = None
        self._exit: Exit | None = None
        self._closing = threading.Event()  # set with CLOSING: what waits on it wakes at once

    @classmethod
    def joining(cls) -> Lifecycle:
        """One past start-up and warm-up: for parts assembled without ``run_worker``."""
        life = cls()
        life.advance(Phase.WARMING)
        life.advance(Phase.JOINING)
        return life

    # -- reading ----------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        with self._lock:
            return self._phase

    @property
    def stop_requested(self) -> bool:
        with self._lock:
            return self._stop_requests > 0

    @property
    def forced(self) -> bool:
        """A second stop request: stop now, committing only what is durable."""
        with self._lock:
            return self._stop_requests > 1

    @property
    def fatal(self) -> BaseException | None:
        with self._lock:
            return self._fatal

    @property
    def serving(self) -> bool:
        """The consumer loop goes on: no stop asked for and no fatal error."""
        with self._lock:
            return self._stop_requests == 0 and self._fatal is None

    @property
    def closing(self) -> bool:
        """Generation has stopped: output threads give up retrying (the work is redone)."""
        with self._lock:
            return self._phase in (Phase.CLOSING, *_ENDED)

    def wait_closing(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, woken by CLOSING; True if closing."""
        return self._closing.wait(timeout)

    @property
    def exit(self) -> Exit | None:
        with self._lock:
            return self._exit

    def readiness(self) -> tuple[bool, str]:
        """``/ready``: (ready, why); the reason is the probe's response body."""
        with self._lock:
            if self._phase is Phase.READY and self._stop_requests == 0 and self._fatal is None:
                return True, "ready"
            if self._phase in (Phase.STARTING, Phase.WARMING, Phase.JOINING):
                return False, self._phase.value
            return False, "stopping" if self._phase not in _ENDED else self._phase.value

    # -- changing ---------------------------------------------------------------------------
    def advance(self, to: Phase) -> None:
        """Move to ``to``; an order the diagram above does not draw is a bug in the caller."""
        with self._lock:
            self._move(to)

    def joined(self) -> None:
        """The group's first assignment arrived: READY, unless already past JOINING."""
        with self._lock:
            if self._phase is Phase.JOINING:
                self._phase = Phase.READY

    def request_stop(self) -> bool:
        """First call: drain, then stop. Second: stop now. Returns True for the second."""
        with self._lock:
            self._stop_requests += 1
            return self._stop_requests > 1

    def fail(self, error: BaseException) -> None:
        """A fatal error (device lost, retry budget spent, producer fenced): the first one
        decides the exit; later ones, usually its consequences, are only logged, as is one
        that arrives once the exit is decided (a straggling thread): the exit stays as said."""
        with self._lock:
            if self._fatal is None and self._phase not in _ENDED:
                self._fatal = error
                return
            first = self._fatal
        log.info("fatal error after %s: %s", first or "the end", error)

    def finish(self, *, complete: bool) -> Exit:
        """CLOSING is over: STOPPED after a complete drain, FAILED otherwise."""
        with self._lock:
            if self._fatal is not None:
                return self._end(Exit(EXIT_FATAL, f"fatal error: {self._fatal}"))
            self._move(Phase.STOPPED)
            if not complete:
                return self._end(
                    Exit(EXIT_INCOMPLETE_DRAIN, "stopped with unfinished work; it will be redone")
                )
            return self._end(Exit(0, "drained cleanly"))

    def refuse_start(self, setting: str) -> Exit:
        """A misconfiguration found before serving: restarting unchanged fails the same way."""
        with self._lock:
            return self._end(Exit(EXIT_CONFIG, f"misconfiguration at start-up: {setting}"))

    def crash(self, error: BaseException) -> Exit:
        """A bug: nothing unsafe was committed (commits only ever follow durable outputs)."""
        with self._lock:
            return self._end(Exit(EXIT_UNEXPECTED, f"unexpected {type(error).__name__}: {error}"))

    # -- under the lock ---------------------------------------------------------------------
    def _move(self, to: Phase) -> None:
        if to not in _NEXT[self._phase]:
            raise RuntimeError(f"worker lifecycle: {self._phase.name} cannot move to {to.name}")
        self._phase = to
        if to is Phase.CLOSING:
            self._closing.set()

    def _end(self, exit_: Exit) -> Exit:
        if self._exit is None:  # the first way out is the one reported
            self._exit = exit_
        if self._exit.code != 0:
            self._phase = Phase.FAILED
        self._closing.set()
        return self._exit
