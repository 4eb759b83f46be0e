"""A real MinIO server, built once from source with ``go install`` and cached.

MinIO publishes no Debian package and no PyPI wheel; ``go install`` of a pinned module version is
the one reproducible way to get the real server on a machine without Docker. The build takes
minutes, so the binary is kept in the cache keyed by that version.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from streamgen.local.cache import cache_root, exclusive
from streamgen.local.process import (
    LocalStackError,
    ServerProcess,
    require_tool,
    spawn,
)
from streamgen.local.progress import building, cached

__all__ = ["MINIO_VERSION", "MinioServer", "prepare_minio"]

MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
_GO_HINT = "install Go 1.24+ (https://go.dev/dl/ or apt-get install golang) to build MinIO"
_START_TIMEOUT_S = 60.0


def prepare_minio() -> Path:
    """Return the path of the MinIO binary, building it with ``go install`` on first use."""
    home = cache_root() / f"minio-{MINIO_VERSION}"
    binary = home / "minio"
    with exclusive(home):
        if binary.is_file():
            cached("MinIO", binary)
            return binary
        go = require_tool("go", _GO_HINT)
        # Build into a scratch GOBIN and move the finished binary: an interrupted build must
        # not leave a truncated executable behind under the final name.
        scratch = home / "build"
        scratch.mkdir(exist_ok=True)
        env = {**os.environ, "GOBIN": str(scratch), "CGO_ENABLED": "0"}
        command = [go, "install", f"{MINIO_MODULE}@{MINIO_VERSION}"]
        with building("MinIO", "building with go install (minutes the first time)"):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalStackError(
                f"`go install {MINIO_MODULE}@{MINIO_VERSION}` failed (exit {done.returncode}):\n"
                f"{done.stderr[-3000:]}"
            )
        (scratch / "minio").replace(binary)
    return binary


@dataclass(frozen=True)
class MinioServer:
    """One single-drive MinIO server whose data, log and pid file live under ``home``."""

    home: Path
    port: int
    console_port: int
    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "minio.log"

    @property
    def _process(self) -> ServerProcess:
        return ServerProcess(
            name=f"MinIO on {self.endpoint}",
            component="MinIO",
            pid_file=self.home / "minio.pid",
            # The absolute data dir is on the command line and unique to this stack.
            marker=str(self.data_dir),
            ports=(self.port, self.console_port),
            log_file=self.log_file,
            start_timeout_s=_START_TIMEOUT_S,
        )

    def pid(self) -> int | None:
        return self._process.pid()

    def ready(self) -> bool:
        url = f"http://{self.endpoint}/minio/health/live"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        """Start the server unless it already runs, and wait until it reports itself live."""
        self._process.start(self._launch, self.ready)

    def stop(self) -> bool:
        return self._process.stop(grace=10.0)

    def _launch(self) -> int:
        binary = prepare_minio()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            # No phone-home for updates from a local test server.
            "MINIO_UPDATE": "off",
        }
        argv = [
            str(binary), "server", str(self.data_dir),
            "--address", self.endpoint,
            "--console-address", f"127.0.0.1:{self.console_port}",
        ]  # fmt: skip
        return spawn(argv, pid_file=self._process.pid_file, log_file=self.log_file, env=env)
