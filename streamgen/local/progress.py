"""What a long preparation step is doing, as it does it.

A cold ``streamgen dev prepare`` runs for minutes (the MinIO build alone takes about five on
two cores); silent, it reads as a hang. Each component says when it starts, then a line at
least every ``HEARTBEAT_S`` while it runs, then how long it took, or that it was cached.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["HEARTBEAT_S", "building", "cached"]

log = logging.getLogger(__name__)

# Under the 15 s after which a newcomer starts to wonder whether anything is happening.
HEARTBEAT_S = 10.0


@contextmanager
def building(component: str, action: str, *, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Log ``component: action ...``, a "still ..." line every ``every_s``, then the duration."""
    log.info("%s: %s ...", component, action)
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(every_s):
            log.info("%s: still %s (%.0f s)", component, action, time.monotonic() - started)

    beat = threading.Thread(target=heartbeat, name=f"heartbeat {component}", daemon=True)
    beat.start()
    try:
        yield
    except BaseException:
        log.error("%s: failed after %.1f s", component, time.monotonic() - started)
        raise
    finally:
        done.set()
        beat.join()
    log.info("%s: done in %.1f s", component, time.monotonic() - started)


# Components already reported cached by this process: `dev up` looks each one up twice
# (preparing, then starting), and one line per component is enough.
_reported: set[Path] = set()


def cached(component: str, path: Path) -> None:
    level = logging.DEBUG if path in _reported else logging.INFO
    _reported.add(path)
    log.log(level, "%s: cached (%s)", component, path)
