"""The local stack: one Kafka broker, one MinIO server and (unless turned off) one schema
registry under one state dir.

::

    STATE_DIR/
      state.json                 ports, KRaft cluster id, credentials, secure (fixed at first up)
      kafka/  server.properties  log4j2.properties  kafka.pid  data/  logs/server.log
              tls/  ca.pem  ca.key.pem  broker.p12      (secure: the TLS listener's CA and keys)
      minio/  minio.pid  data/  logs/minio.log
      registry/  registry.pid  data/registry.mv.db  logs/registry.log

Ports and credentials are chosen once and kept in ``state.json``, so a stopped component comes
back where clients expect it, with its data (that is what fault-injection tests rely on).
A secure stack (:mod:`streamgen.local.security`) stays secure: ``up`` of a stopped one brings
it back with the same users.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from streamgen.local.kafka import KafkaBroker, new_cluster_id, prepare_kafka
from streamgen.local.minio import MinioServer, prepare_minio
from streamgen.local.process import LocalStackError
from streamgen.local.registry import SchemaRegistryServer, prepare_registry
from streamgen.local.security import KEYSTORE, KafkaSecurity, new_passwords
from streamgen.local.tls import BrokerTls

__all__ = ["ComponentStatus", "LocalStack", "StackState", "default_state_dir", "prepare"]

DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
# The secure stack's SASL_SSL listener, beside its SASL_PLAINTEXT one on the Kafka port.
DEFAULT_KAFKA_TLS_PORT = 9094
DEFAULT_MINIO_PORT = 9000
DEFAULT_MINIO_CONSOLE_PORT = 9001
# Confluent Schema Registry's customary port, so documentation and habits carry over.
DEFAULT_REGISTRY_PORT = 8081
# Fixed and printed by `streamgen dev up`: the servers listen on 127.0.0.1 only, and
# docker-compose.yml uses the same pair so one set of env vars works for both stacks.
DEFAULT_ACCESS_KEY = "streamgen"
DEFAULT_SECRET_KEY = "streamgen-secret"


def default_state_dir() -> Path:
    return Path(os.environ.get("STREAMGEN_STATE_DIR", ".state"))


def prepare(*, registry: bool = True) -> None:
    """Download and build everything the stack needs, so that ``up`` only starts processes."""
    prepare_kafka()
    prepare_minio()
    if registry:
        prepare_registry()


@dataclass(frozen=True)
class StackState:
    kafka_port: int = DEFAULT_KAFKA_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    minio_port: int = DEFAULT_MINIO_PORT
    minio_console_port: int = DEFAULT_MINIO_CONSOLE_PORT
    cluster_id: str = ""
    minio_access_key: str = DEFAULT_ACCESS_KEY
    minio_secret_key: str = DEFAULT_SECRET_KEY
    # SASL/SCRAM and ACLs on the broker (`dev up --secure`), with these users' passwords.
    secure: bool = False
    kafka_passwords: dict[str, str] = field(default_factory=dict)
    registry_port: int = DEFAULT_REGISTRY_PORT
    # The secure broker's SASL_SSL listener; 0 on a plain stack, and on a secure state dir
    # made before the listener existed (it stays without one).
    kafka_tls_port: int = 0
    # Whether `up` starts the schema registry and `env` points clients at it; unlike the
    # ports, it may change from one `up` to the next (`streamgen dev up --no-registry`).
    registry: bool = True


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    pid: int | None
    ready: bool
    log_file: Path


class LocalStack:
    """Start, inspect and stop the stack kept in ``state_dir``.

    Ports and ``secure`` given here apply to a new state dir; an existing one keeps what it
    was created with, and asking for something else is an error rather than a silent surprise.
    ``registry`` (None: as saved, else on) says whether ``up`` starts the schema registry.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        kafka_port: int | None = None,
        controller_port: int | None = None,
        minio_port: int | None = None,
        minio_console_port: int | None = None,
        secure: bool | None = None,
        registry_port: int | None = None,
        registry: bool | None = None,
        kafka_tls_port: int | None = None,
    ) -> None:
        self.state_dir = Path(state_dir if state_dir is not None else default_state_dir())
        self.state_dir = self.state_dir.resolve()
        ports = {
            "kafka_port": kafka_port,
            "controller_port": controller_port,
            "minio_port": minio_port,
            "minio_console_port": minio_console_port,
            "registry_port": registry_port,
            "kafka_tls_port": kafka_tls_port,
        }
        requested: dict[str, object] = {k: v for k, v in ports.items() if v is not None}
        if secure is not None:
            requested["secure"] = secure
        saved = self._load()
        if saved is None:
            self.state = StackState(
                kafka_port=kafka_port or DEFAULT_KAFKA_PORT,
                controller_port=controller_port or DEFAULT_CONTROLLER_PORT,
                minio_port=minio_port or DEFAULT_MINIO_PORT,
                minio_console_port=minio_console_port or DEFAULT_MINIO_CONSOLE_PORT,
                cluster_id=new_cluster_id(),
                secure=bool(secure),
                kafka_passwords=new_passwords() if secure else {},
                registry_port=registry_port or DEFAULT_REGISTRY_PORT,
                kafka_tls_port=(kafka_tls_port or DEFAULT_KAFKA_TLS_PORT) if secure else 0,
            )
        else:
            for name, value in requested.items():
                if getattr(saved, name) != value:
                    raise LocalStackError(
                        f"{self.state_dir} was set up with {name}={getattr(saved, name)}, not "
                        f"{value}; use another state dir or `streamgen dev down --purge` first"
                    )
            self.state = saved
        if registry is not None:
            self.state = replace(self.state, registry=registry)
        self.kafka = KafkaBroker(
            home=self.state_dir / "kafka",
            port=self.state.kafka_port,
            controller_port=self.state.controller_port,
            cluster_id=self.state.cluster_id,
            security=self._security(),
            tls_port=self.state.kafka_tls_port,
        )
        self.minio = MinioServer(
            home=self.state_dir / "minio",
            port=self.state.minio_port,
            console_port=self.state.minio_console_port,
            access_key=self.state.minio_access_key,
            secret_key=self.state.minio_secret_key,
        )
        self.registry = SchemaRegistryServer(
            home=self.state_dir / "registry", port=self.state.registry_port
        )

    def _security(self) -> KafkaSecurity | None:
        if not self.state.secure:
            return None
        keystore_password = self.state.kafka_passwords.get(KEYSTORE)
        tls = None
        if self.state.kafka_tls_port and keystore_password:
            tls = BrokerTls(self.state_dir / "kafka" / "tls", keystore_password)
        return KafkaSecurity(self.state.kafka_passwords, tls)

    def exists(self) -> bool:
        """Whether ``up`` ever ran in this state dir."""
        return self._state_file.is_file()

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def secure(self) -> bool:
        return self.state.secure

    @property
    def kafka_tls_bootstrap_servers(self) -> str:
        """The secure broker's SASL_SSL listener (LocalStackError on a stack without one)."""
        return self.kafka.tls_bootstrap_servers

    def kafka_client_config(self, user: str = "worker", *, tls: bool = False) -> dict[str, str]:
        """The login of ``user`` (worker, producer, admin) on a secure stack; {} otherwise.
        With ``tls``: SASL_SSL for :attr:`kafka_tls_bootstrap_servers`, trusting the stack's
        CA (``ssl.ca.location``), with certificate verification on."""
        return self.kafka.client_config(user, tls=tls)

    @property
    def minio_endpoint(self) -> str:
        return self.minio.endpoint

    @property
    def minio_access_key(self) -> str:
        return self.minio.access_key

    @property
    def minio_secret_key(self) -> str:
        return self.minio.secret_key

    @property
    def schema_registry_url(self) -> str:
        return self.registry.url

    def up(self) -> None:
        """Start whatever is not running and wait until every server answers. Idempotent.

        A running registry is left alone when the stack is set without one (only ``down``
        stops it), so a test session may start it on the side with :meth:`start_registry`.
        """
        prepare(registry=self.state.registry)
        self._save()
        starts = [self.kafka.start, self.minio.start]
        if self.state.registry:
            starts.append(self.registry.start)
        # Each server takes seconds to start; starting them side by side shortens the wait.
        with ThreadPoolExecutor(max_workers=len(starts)) as pool:
            futures = [pool.submit(start) for start in starts]
            errors = [f.exception() for f in futures]
        failures = [str(e) for e in errors if e is not None]
        if failures:
            raise LocalStackError("; ".join(failures))

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop the processes this state dir started; with ``purge`` also delete their data.

        Returns the names of the components that were running.
        """
        stopped = []
        components = (("kafka", self.kafka), ("minio", self.minio), ("registry", self.registry))
        for name, component in components:
            if component.stop():
                stopped.append(name)
        if purge:
            # Remove only what the stack wrote: the state dir may be shared with other files.
            for home in (self.kafka.home, self.minio.home, self.registry.home):
                shutil.rmtree(home, ignore_errors=True)
            self._state_file.unlink(missing_ok=True)
            if self.state_dir.is_dir() and not any(self.state_dir.iterdir()):
                self.state_dir.rmdir()
        return stopped

    def status(self) -> list[ComponentStatus]:
        """Kafka and MinIO, then the registry when the stack has one or it runs anyway."""
        kafka_pid, minio_pid = self.kafka.pid(), self.minio.pid()
        components = [
            ComponentStatus(
                name="kafka",
                address=self.bootstrap_servers,
                pid=kafka_pid,
                ready=kafka_pid is not None and self.kafka.ready(),
                log_file=self.kafka.log_file,
            ),
            ComponentStatus(
                name="minio",
                address=self.minio_endpoint,
                pid=minio_pid,
                ready=minio_pid is not None and self.minio.ready(),
                log_file=self.minio.log_file,
            ),
        ]
        registry_pid = self.registry.pid()
        if self.state.registry or registry_pid is not None:
            components.append(
                ComponentStatus(
                    name="registry",
                    address=self.registry.address,
                    pid=registry_pid,
                    ready=registry_pid is not None and self.registry.ready(),
                    log_file=self.registry.log_file,
                )
            )
        return components

    # Fault injection: stop one component and bring it back on the same port with its data.
    def stop_kafka(self) -> None:
        self.kafka.stop()

    def start_kafka(self) -> None:
        self.kafka.start()

    def stop_minio(self) -> None:
        self.minio.stop()

    def start_minio(self) -> None:
        self.minio.start()

    def stop_registry(self) -> None:
        self.registry.stop()

    def start_registry(self) -> None:
        self.registry.start()

    def env(self, bucket: str = "streamgen", *, tls: bool = False) -> dict[str, str]:
        """The ``STREAMGEN_*`` variables that point streamgen's commands at this stack (as the
        worker user on a secure one; with ``tls`` through its SASL_SSL listener)."""
        servers = self.kafka_tls_bootstrap_servers if tls else self.bootstrap_servers
        env = {"STREAMGEN_KAFKA_BOOTSTRAP_SERVERS": servers}
        if self.secure:
            login = self.kafka_client_config("worker", tls=tls)
            env["STREAMGEN_KAFKA_CLIENT_CONFIG"] = ",".join(f"{k}={v}" for k, v in login.items())
        env |= {
            "STREAMGEN_STORE_URL": f"s3://{bucket}",
            "STREAMGEN_STORE_ENDPOINT": self.minio_endpoint,
            "STREAMGEN_STORE_ACCESS_KEY": self.minio_access_key,
            "STREAMGEN_STORE_SECRET_KEY": self.minio_secret_key,
        }
        if self.state.registry:
            # Registry framing for every producer and worker pointed at this stack.
            env["STREAMGEN_KAFKA_SCHEMA_REGISTRY_URL"] = self.schema_registry_url
        return env

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _load(self) -> StackState | None:
        try:
            raw = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LocalStackError(f"cannot read {self._state_file}: {exc}") from None
        try:
            return StackState(**raw)
        except TypeError as exc:
            raise LocalStackError(
                f"{self._state_file} is not a streamgen state file: {exc}"
            ) from None

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        scratch = self._state_file.with_suffix(".tmp")
        scratch.unlink(missing_ok=True)
        scratch.touch(mode=0o600)  # it holds every password of the stack
        scratch.write_text(json.dumps(asdict(self.state), indent=2) + "\n")
        scratch.replace(self._state_file)
