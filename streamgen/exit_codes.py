"""How a worker process ends, for supervisors (``streamgen fleet``, Kubernetes) and operators.

====  ============================================================================
code  meaning
====  ============================================================================
0     drained cleanly after SIGTERM/SIGINT
1     an unexpected error (a bug): the log holds its traceback; restart it
2     stopped with unfinished work (second signal, drain timeout): redone later
3     fatal after a good start (device lost, retry budget exhausted): restart it
4     misconfiguration found at start-up: restarting unchanged fails the same way
====  ============================================================================
"""

from __future__ import annotations

__all__ = ["EXIT_CONFIG", "EXIT_FATAL", "EXIT_INCOMPLETE_DRAIN", "EXIT_UNEXPECTED"]

# What Python exits with on an uncaught exception, kept for the same case.
EXIT_UNEXPECTED = 1
EXIT_INCOMPLETE_DRAIN = 2
EXIT_FATAL = 3
EXIT_CONFIG = 4
