"""A real Apache Kafka broker (KRaft, combined broker + controller) run from Maven Central jars.

``prepare_kafka`` resolves the broker's jars once with ``mvn`` (the versions are pinned in
``deploy/local/pom.xml``) into the cache; ``KafkaBroker`` writes its config into the state dir,
formats the storage on first start, and runs ``java -cp 'libs/*' kafka.Kafka``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamgen.local.cache import cache_root, exclusive
from streamgen.local.java import java_executable
from streamgen.local.process import (
    LocalStackError,
    ServerProcess,
    port_accepts,
    require_tool,
    spawn,
)
from streamgen.local.progress import building, cached
from streamgen.local.security import KafkaSecurity

__all__ = ["KafkaBroker", "kafka_version", "new_cluster_id", "pom_path", "prepare_kafka"]

_MVN_HINT = "install Apache Maven (Debian/Ubuntu: apt-get install maven)"

# A laptop or a 2-core CI box runs this next to the tests: a small heap, the serial collector and
# the C1 compiler start the broker in seconds and leave the cores to the code under test.
_JVM_OPTIONS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
_START_TIMEOUT_S = 90.0


def pom_path() -> Path:
    """The pom that pins the broker's jars: in a source checkout, or packaged next to this file."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parents[1] / "deploy" / "local" / "pom.xml", package / "pom.xml"):
        if candidate.is_file():
            return candidate
    raise LocalStackError(f"deploy/local/pom.xml not found (looked next to {package})")


def kafka_version(pom: Path) -> str:
    """The ``kafka.version`` property of the pom, so the cache dir follows the pinned version."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", namespace)
    if node is None or not (node.text or "").strip():
        raise LocalStackError(f"{pom} has no <kafka.version> property")
    return (node.text or "").strip()


def prepare_kafka() -> Path:
    """Return the directory holding the broker's jars, resolving them with mvn on first use."""
    java_executable()
    pom = pom_path()
    home = cache_root() / f"kafka-{kafka_version(pom)}"
    libs = home / "libs"
    with exclusive(home):
        if libs.is_dir():
            cached("Kafka jars", libs)
            return libs
        mvn = require_tool("mvn", _MVN_HINT)
        # Resolve into a scratch dir and rename it at the end: an interrupted download must not
        # leave a half-filled libs/ that later runs would take as complete.
        scratch = home / "libs.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        command = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={scratch}", "-DincludeScope=runtime",
        ]  # fmt: skip
        with building("Kafka jars", "resolving with mvn from Maven Central"):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalStackError(
                f"mvn could not resolve the Kafka jars (exit {done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        scratch.rename(libs)
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, as Kafka prints."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Like Kafka's own Uuid.randomUuid: an id starting with "-" would read as a flag.
        if not cluster_id.startswith("-"):
            return cluster_id


_LOG4J2 = """\
status = warn
appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = {logs}/server.log
appender.server.filePattern = {logs}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 50MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = server
"""


@dataclass(frozen=True)
class KafkaBroker:
    """One single-node KRaft broker whose config, data, logs and pid file live under ``home``.

    With ``security``, clients log in with SASL/SCRAM and need ACLs (:mod:`.security`).
    """

    home: Path
    port: int
    controller_port: int
    cluster_id: str
    security: KafkaSecurity | None = None
    # The SASL_SSL listener of a secure broker (0: none).
    tls_port: int = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_bootstrap_servers(self) -> str:
        """The TLS listener's address, on a secure broker that has one."""
        if not self.tls_port or self.security is None or self.security.tls is None:
            raise LocalStackError("this broker has no TLS listener (`dev up --secure` makes one)")
        return f"127.0.0.1:{self.tls_port}"

    def client_config(self, user: str = "admin", *, tls: bool = False) -> dict[str, str]:
        """What a client needs besides ``bootstrap.servers``: a login on a secure broker,
        with ``tls`` the TLS listener's settings too."""
        if self.security is None:
            return {}
        return self.security.client_config(user, tls=tls)

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def _process(self) -> ServerProcess:
        return ServerProcess(
            name=f"Kafka on {self.bootstrap_servers}",
            component="Kafka",
            pid_file=self.home / "kafka.pid",
            # The absolute config path is on the java command line and unique to this stack.
            marker=str(self.config_file),
            ports=tuple(p for p in (self.port, self.controller_port, self.tls_port) if p),
            log_file=self.log_file,
            start_timeout_s=_START_TIMEOUT_S,
        )

    def pid(self) -> int | None:
        return self._process.pid()

    def ready(self) -> bool:
        """The port accepts connections and *this* broker answers a metadata request.

        The cluster id is compared because another broker may hold the port: answering for
        a stranger would point every client at the wrong cluster.
        """
        if not port_accepts(self.port):
            return False
        config: dict[str, Any] = {
            **self.client_config(),
            "bootstrap.servers": self.bootstrap_servers,
            "log_level": 0,
        }
        admin = AdminClient(config)
        try:
            metadata = admin.list_topics(timeout=2)
        except KafkaException:
            return False
        return bool(metadata.cluster_id == self.cluster_id and metadata.brokers)

    def start(self) -> None:
        """Start the broker unless it already runs, and wait until it answers."""
        self._process.start(self._launch, self.ready)

    def stop(self) -> bool:
        return self._process.stop()

    def _launch(self) -> int:
        libs = prepare_kafka()
        if self.security is not None and self.security.tls is not None and self.tls_port:
            self.security.tls.ensure()
        self._write_config()
        self._format_storage(libs)
        return spawn(
            [
                java_executable(),
                *_JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.home / 'logs'}",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(self.config_file),
            ],
            pid_file=self._process.pid_file,
            log_file=self.home / "logs" / "stdout.log",
        )

    def _write_config(self) -> None:
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(_LOG4J2.format(logs=logs))
        listener = f"127.0.0.1:{self.port}"
        controller = f"127.0.0.1:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{controller}",
            "listeners": f"PLAINTEXT://{listener},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{listener}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            # Topics are created on purpose (`streamgen topics create`); a typo in a topic name
            # must fail loudly instead of creating a one-partition topic nobody consumes.
            "auto.create.topics.enable": "false",
            # A single node: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Fewer internal partitions and threads: the default 50 offsets partitions and
            # 8 I/O threads cost seconds of start-up and memory on a 2-core machine.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            # Tests and the demo start consumers one after another; the default 3 s delay
            # before the first rebalance would be paid by every new group.
            "group.initial.rebalance.delay.ms": "0",
            # KIP-848 groups (group.protocol=consumer) keep the 45 s session default, but a
            # group may lower its own (consumer.session.timeout.ms) as far as a classic
            # member's session.timeout.ms can go, so faults heal as fast under both protocols.
            "group.consumer.min.session.timeout.ms": "6000",
            "group.consumer.min.heartbeat.interval.ms": "1000",
        }
        if self.security is not None:
            tls = f"127.0.0.1:{self.tls_port}" if self.tls_port else ""
            settings.update(self.security.server_properties(listener, controller, tls))
        # Holds the broker's and controller's passwords on a secure stack.
        self.config_file.touch(mode=0o600)
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def _format_storage(self, libs: Path) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        command = [
            java_executable(), "-Xmx256m", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
            "-t", self.cluster_id, "-c", str(self.config_file),
        ]  # fmt: skip
        if self.security is not None:
            # The passwords are on this command line for the seconds it runs: the local
            # stack's credentials are for development only.
            command += self.security.format_arguments()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalStackError(
                f"formatting Kafka storage in {self.home / 'data'} failed "
                f"(exit {done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
