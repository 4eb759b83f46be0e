"""Which ``java`` the local stack's Kafka broker runs on.

``$STREAMGEN_JAVA``, when set, names the executable: a host without a Java installation runs
the broker on the minimal JRE of a broker bundle (:mod:`streamgen.local.bundle`), which holds
only the modules the broker needs (the schema registry keeps the ``java`` on PATH); otherwise the
``java`` on PATH.
"""

from __future__ import annotations

import os
from pathlib import Path

from streamgen.local.process import LocalStackError, require_tool

__all__ = ["JAVA_ENV", "java_executable"]

JAVA_ENV = "STREAMGEN_JAVA"
_JAVA_HINT = (
    "install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless), "
    f"or set {JAVA_ENV} to a java executable (a broker bundle's jre/bin/java)"
)


def java_executable() -> str:
    """``$STREAMGEN_JAVA`` if set (it must be an executable file), else ``java`` on PATH."""
    explicit = os.environ.get(JAVA_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LocalStackError(f"{JAVA_ENV}={explicit} is not an executable file")
        return str(path)
    return require_tool("java", _JAVA_HINT)
