"""Every start-up mistake an operator can make, one row each: the worker, run as a process
against the real stack, exits 4 (EXIT_CONFIG) with one line naming the setting and what was
wrong, without a traceback, and before its model loads (DESIGN invariant 10).

A row names the setting the line must name and words that say what was wrong: "is an HTTP
server", not "Broker transport failure" at the end of the timeout.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from streamgen.engine.model_init import write_model
from streamgen.exit_codes import EXIT_CONFIG
from streamgen.local.process import free_ports
from streamgen.local.stack import LocalStack
from streamgen.settings import Settings
from tests.integration.worker.test_startup import fast, start_worker

pytestmark = pytest.mark.integration


@dataclass
class Scene:
    """What a row may build its mistake from: good settings and the real stack."""

    settings: Settings
    stack: LocalStack
    registry_url: str
    tmp_path: Path
    request: pytest.FixtureRequest
    taken_port: int  # a port something else listens on

    def kafka(self, **fields: Any) -> Settings:
        return replace(self.settings, kafka=replace(self.settings.kafka, **fields))

    def secure_stack(self) -> LocalStack:
        stack: LocalStack = self.request.getfixturevalue("secure_stack")
        return stack


Attempt = tuple[Settings, dict[str, str], tuple[str, ...]]


@dataclass(frozen=True)
class Mistake:
    name: str
    setting: str  # the name the one line must carry
    words: tuple[str, ...]  # what it must say was wrong
    make: Callable[[Scene], Attempt]


def _free_port() -> int:
    [port] = free_ports(1)
    return port


def _two_models(scene: Scene) -> Attempt:
    good = scene.tmp_path / "good"
    write_model("tiny", good)
    missing = str(scene.tmp_path / "typo")
    engine = replace(scene.settings.engine, models={"tiny": str(good), "other": missing})
    return replace(scene.settings, engine=engine), {}, ()


def _tls_without_tls_settings(scene: Scene) -> Attempt:
    secure = scene.secure_stack()
    return scene.kafka(bootstrap_servers=secure.kafka_tls_bootstrap_servers), {}, ()


MISTAKES = [
    Mistake(
        "misspelt-variable",
        "STREAMGEN_WORKER_MAX_INFLIGHT",
        ("did you mean STREAMGEN_WORKER_MAX_IN_FLIGHT",),
        lambda s: (s.settings, {"STREAMGEN_WORKER_MAX_INFLIGHT": "8"}, ()),
    ),
    Mistake(
        "wrong-type",
        "worker.max_in_flight",
        ("expected int", "'many'"),
        lambda s: (s.settings, {"STREAMGEN_WORKER_MAX_IN_FLIGHT": "many"}, ()),
    ),
    Mistake(
        "out-of-range",
        "worker.max_in_flight",
        ("must be > 0",),
        lambda s: (s.settings, {}, ("--set", "worker.max_in_flight=0")),
    ),
    Mistake(
        "unknown-set-key",
        "worker.max_inflight",
        ("unknown setting",),
        lambda s: (s.settings, {}, ("--set", "worker.max_inflight=8")),
    ),
    Mistake(
        "flag-of-wrong-type",
        "--max-in-flight",
        ("not a valid integer",),
        lambda s: (s.settings, {}, ("--max-in-flight", "abc")),
    ),
    Mistake(
        "registry-not-listening",
        "kafka.schema_registry_url",
        ("no schema registry answered",),
        lambda s: (s.kafka(schema_registry_url=f"http://127.0.0.1:{_free_port()}"), {}, ()),
    ),
    Mistake(
        "registry-wrong-path",
        "kafka.schema_registry_url",
        ("404", "no registry API at this path"),
        lambda s: (s.kafka(schema_registry_url=s.registry_url.rsplit("/apis/", 1)[0]), {}, ()),
    ),
    Mistake(
        "registry-is-the-object-store",
        "kafka.schema_registry_url",
        ("not a registry",),
        lambda s: (s.kafka(schema_registry_url=f"http://{s.stack.minio_endpoint}"), {}, ()),
    ),
    Mistake(
        "registry-is-the-broker",
        "kafka.schema_registry_url",
        ("does not answer in HTTP",),
        lambda s: (s.kafka(schema_registry_url=f"http://{s.stack.bootstrap_servers}"), {}, ()),
    ),
    Mistake(
        "broker-not-listening",
        "kafka.bootstrap_servers",
        ("Connection refused",),
        lambda s: (s.kafka(bootstrap_servers=f"127.0.0.1:{_free_port()}"), {}, ()),
    ),
    Mistake(
        "broker-is-an-http-server",
        "kafka.bootstrap_servers",
        ("is an HTTP server",),
        lambda s: (s.kafka(bootstrap_servers=s.stack.minio_endpoint), {}, ()),
    ),
    Mistake(
        "broker-is-tls-without-tls-settings",
        "kafka.client_config",
        ("is a TLS listener", "security.protocol"),
        _tls_without_tls_settings,
    ),
    Mistake(
        "topic-misspelt",
        "topics.requests",
        ("does not exist",),
        lambda s: (
            replace(s.settings, topics=replace(s.settings.topics, requests="typo.requests")),
            {},
            (),
        ),
    ),
    Mistake(  # cancellation is turned off by an empty topics.cancels, never by a missing topic
        "cancels-topic-missing",
        "topics.cancels",
        ("does not exist",),
        lambda s: (
            replace(s.settings, topics=replace(s.settings.topics, cancels="typo.cancels")),
            {},
            (),
        ),
    ),
    Mistake(  # progress on: its topic must exist (topics create makes it)
        "progress-topic-missing",
        "topics.progress",
        ("does not exist",),
        lambda s: (
            replace(
                s.settings,
                topics=replace(s.settings.topics, progress="typo.progress"),
                worker=replace(s.settings.worker, progress=True),
            ),
            {},
            (),
        ),
    ),
    Mistake(
        "bucket-misspelt",
        "store.url",
        ("create_bucket",),
        lambda s: (
            replace(
                s.settings,
                store=replace(s.settings.store, url="s3://no-such-bucket", create_bucket=False),
            ),
            {},
            (),
        ),
    ),
    Mistake(
        "store-not-listening",
        "store.endpoint",
        ("gave up",),
        lambda s: (
            replace(
                s.settings, store=replace(s.settings.store, endpoint=f"127.0.0.1:{_free_port()}")
            ),
            {},
            (),
        ),
    ),
    Mistake(
        "model-path-missing",
        "engine.models[tiny]",
        ("does not exist",),
        lambda s: (
            replace(s.settings, engine=replace(s.settings.engine, models={"tiny": "/no/model"})),
            {},
            (),
        ),
    ),
    Mistake("second-model-missing", "engine.models[other]", ("does not exist",), _two_models),
    Mistake(
        "metrics-port-in-use",
        "worker.metrics_port",
        ("in use",),
        lambda s: (
            replace(
                s.settings,
                worker=replace(
                    s.settings.worker, metrics_port=s.taken_port, metrics_address="127.0.0.1"
                ),
            ),
            {},
            (),
        ),
    ),
]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_a_start_up_mistake_exits_4_naming_the_setting_before_the_model_loads(
    mistake: Mistake,
    worker_settings: Settings,
    stack: LocalStack,
    schema_registry: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    taken_port: int,
) -> None:
    scene = Scene(fast(worker_settings), stack, schema_registry, tmp_path, request, taken_port)
    settings, env, args = mistake.make(scene)
    code, output, took = start_worker(settings, env, args)
    print(f"{mistake.name}: exit {code} after {took:.1f} s")
    assert code == EXIT_CONFIG, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    [line] = [ln for ln in output.splitlines() if "cannot start" in ln]
    assert mistake.setting in line, line
    for word in mistake.words:
        assert word in line, line
    assert "loading model" not in output, "the model loaded before the mistake was found"
