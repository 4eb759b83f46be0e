"""A real Confluent-compatible schema registry: Apicurio Registry, built from Maven Central jars.

Apicurio serves Confluent's REST API under ``/apis/ccompat/v6``, so confluent-kafka's
``SchemaRegistryClient`` (and any other Confluent client) talks to it unchanged: registering,
looking schemas up by id, per-subject compatibility (BACKWARD, …), 409 for an incompatible
schema. Maven Central has its classes but no runnable jar, so ``prepare_registry`` builds one
once with ``mvn package`` on ``deploy/local/registry-pom.xml`` (a Quarkus build of the app jar)
and caches the runner jar with its ``lib/``.

``start`` sets the registry-wide compatibility to FULL_TRANSITIVE (``EVOLUTION_COMPATIBILITY``),
so a schema that breaks the contracts' evolution rules is refused at registration.

Schemas are kept in an H2 database file under the state dir, not in memory: the broker keeps
its records across ``dev down``/``dev up``, and a record's schema id must still resolve then.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from streamgen.contracts.registry import EVOLUTION_COMPATIBILITY
from streamgen.local.cache import cache_root, exclusive
from streamgen.local.process import (
    LocalStackError,
    ServerProcess,
    require_tool,
    spawn,
)
from streamgen.local.progress import building, cached

__all__ = ["CCOMPAT_PATH", "SchemaRegistryServer", "prepare_registry", "registry_version"]

# Confluent's API as Apicurio 2.1 serves it; clients take this whole URL as the registry URL.
CCOMPAT_PATH = "/apis/ccompat/v6"
RUNNER_JAR = "apicurio-registry-runner.jar"

_JAVA_HINT = "install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
_MVN_HINT = "install Apache Maven (Debian/Ubuntu: apt-get install maven)"
# Measured on a 2-core machine: ready in about 3.5 s, about 200 MB resident. The small heap,
# serial collector and C1-only compiler keep it from competing with the broker and the tests.
_JVM_OPTIONS = ["-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
_START_TIMEOUT_S = 90.0


def registry_pom_path() -> Path:
    """The pom that builds the registry: in a source checkout, or packaged next to this file."""
    package = Path(__file__).resolve().parent
    candidates = (
        package.parents[1] / "deploy" / "local" / "registry-pom.xml",
        package / "registry-pom.xml",
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise LocalStackError(f"deploy/local/registry-pom.xml not found (looked next to {package})")


def registry_version(pom: Path) -> str:
    """The pom's ``apicurio.version``, so the cache dir follows the pinned version."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:apicurio.version", namespace)
    if node is None or not (node.text or "").strip():
        raise LocalStackError(f"{pom} has no <apicurio.version> property")
    return (node.text or "").strip()


def prepare_registry() -> Path:
    """Return the registry's runner jar, building it with mvn on first use (about a minute)."""
    require_tool("java", _JAVA_HINT)
    pom = registry_pom_path()
    home = cache_root() / f"apicurio-registry-{registry_version(pom)}"
    app = home / "app"
    with exclusive(home):
        if (app / RUNNER_JAR).is_file():
            cached("schema registry", app)
            return app / RUNNER_JAR
        mvn = require_tool("mvn", _MVN_HINT)
        # Build in a scratch project and rename the result at the end: an interrupted build
        # must not leave a half-filled app/ that later runs would take as complete.
        build = home / "build"
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        shutil.copyfile(pom, build / "pom.xml")
        command = [mvn, "-q", "-B", "-f", str(build / "pom.xml"), "package", "-DskipTests"]
        with building("schema registry", "building Apicurio with mvn package"):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        target = build / "target"
        if done.returncode != 0 or not (target / RUNNER_JAR).is_file():
            raise LocalStackError(
                f"mvn could not build the schema registry (exit {done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        shutil.rmtree(app, ignore_errors=True)
        scratch = home / "app.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        # The runner jar's manifest names its dependencies as lib/…, relative to itself.
        (target / "lib").rename(scratch / "lib")
        (target / RUNNER_JAR).rename(scratch / RUNNER_JAR)
        scratch.rename(app)
        shutil.rmtree(build, ignore_errors=True)
    return app / RUNNER_JAR


@dataclass(frozen=True)
class SchemaRegistryServer:
    """One Apicurio Registry whose database, log and pid file live under ``home``."""

    home: Path
    port: int

    @property
    def url(self) -> str:
        """What ``kafka.schema_registry_url`` must be set to."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "registry.log"

    @property
    def _database(self) -> Path:
        # H2 adds ".mv.db"; the absolute path is on the java command line (the process marker).
        return self.home / "data" / "registry"

    @property
    def _jdbc_url(self) -> str:
        return f"jdbc:h2:file:{self._database}"

    @property
    def _process(self) -> ServerProcess:
        return ServerProcess(
            name=f"the schema registry on {self.address}",
            component="the schema registry",
            pid_file=self.home / "registry.pid",
            marker=self._jdbc_url,
            ports=(self.port,),
            log_file=self.log_file,
            start_timeout_s=_START_TIMEOUT_S,
        )

    def pid(self) -> int | None:
        return self._process.pid()

    def ready(self) -> bool:
        """The Confluent-compatible API answers (a list of subjects), not merely the port."""
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=1.0) as response:
                return response.status == 200 and isinstance(json.load(response), list)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def start(self) -> None:
        """Start the registry unless it already runs, wait until its API answers, and set its
        default compatibility to what the contracts need."""
        self._process.start(self._launch, self.ready)
        # Also on a registry that was already running: one started before this rule existed
        # (or changed by hand) is brought back to it by the next `dev up`.
        self.set_default_compatibility(EVOLUTION_COMPATIBILITY)

    def set_default_compatibility(self, level: str) -> None:
        """Set the registry-wide compatibility, which every subject without its own follows.

        Registry-wide, not per subject: Apicurio sets a subject's rule only once the subject
        has a schema, and the request, result and dead-letter subjects are named after topics
        that producers and workers register under later.
        """
        request = urllib.request.Request(
            f"{self.url}/config",
            data=json.dumps({"compatibility": level}).encode(),
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            method="PUT",
        )
        try:
            with urllib.request.urlopen(request, timeout=10.0) as response:
                answer = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise LocalStackError(
                f"the schema registry on {self.address} refused compatibility {level}: {exc} "
                f"(see {self.log_file})"
            ) from exc
        if answer.get("compatibility") != level:
            raise LocalStackError(
                f"the schema registry on {self.address} answered {answer} to compatibility {level}"
            )

    def stop(self) -> bool:
        return self._process.stop(grace=10.0)

    def _launch(self) -> int:
        jar = prepare_registry()
        self._database.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            require_tool("java", _JAVA_HINT),
            *_JVM_OPTIONS,
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.port={self.port}",
            f"-Dquarkus.datasource.jdbc.url={self._jdbc_url}",
            "-jar",
            str(jar),
        ]
        return spawn(argv, pid_file=self._process.pid_file, log_file=self.log_file, cwd=self.home)
