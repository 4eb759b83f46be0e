"""Session fixtures: a real Kafka broker and a real MinIO server, started only when a test asks;
``secure_stack`` is a second one whose broker wants logins and ACLs, and a real schema registry
runs next to the first for the tests that ask for ``schema_registry``.

Unit tests never touch these, so ``pytest tests/unit`` starts nothing. The stack lives in a
temporary state dir on free ports and is stopped when the session ends.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamgen.local.process import LocalStackError, free_ports, is_alive, read_pid
from streamgen.local.stack import LocalStack
from streamgen.ops.topics import create_topics, plan_topics
from streamgen.settings import KafkaSettings, Settings, StoreSettings, TopicSettings


def _stop_orphaned_stacks(basetemp: Path) -> None:
    """Stop stacks left running by earlier sessions that were killed before their teardown.

    A stack belongs to the pytest process named in its ``owner.pid``; stacks of sessions
    still running (another terminal, another engineer) are left alone.
    """
    for owner_file in basetemp.parent.glob("*/stack*/owner.pid"):
        owner = read_pid(owner_file)
        if owner is not None and owner != os.getpid() and not is_alive(owner):
            try:
                LocalStack(owner_file.parent).down()
            except LocalStackError as exc:
                message = f"could not stop the orphaned stack in {owner_file.parent}: {exc}"
                warnings.warn(message, stacklevel=2)
                continue
            owner_file.unlink(missing_ok=True)


def _session_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, secure: bool
) -> Iterator[LocalStack]:
    _stop_orphaned_stacks(tmp_path_factory.getbasetemp())
    state_dir = tmp_path_factory.mktemp(name)
    (state_dir / "owner.pid").write_text(f"{os.getpid()}\n")
    ports = free_ports(6)
    kafka_port, controller_port, minio_port, console_port, registry_port, tls_port = ports
    local = LocalStack(
        state_dir,
        kafka_port=kafka_port,
        controller_port=controller_port,
        minio_port=minio_port,
        minio_console_port=console_port,
        secure=secure,
        registry_port=registry_port,
        kafka_tls_port=tls_port if secure else None,
        # Most tests use single-object framing; the registry starts only for those that ask.
        registry=False,
    )
    try:
        local.up()
        yield local
    finally:
        local.down()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from _session_stack(tmp_path_factory, "stack", secure=False)


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A second stack whose broker wants SASL/SCRAM logins and ACLs (`dev up --secure`), on
    a SASL_PLAINTEXT listener and a SASL_SSL one with a certificate from the stack's own CA."""
    yield from _session_stack(tmp_path_factory, "stack-secure", secure=True)


@pytest.fixture(scope="session")
def schema_registry(stack: LocalStack) -> str:
    """The URL of a real Confluent-compatible registry (Apicurio) for ``kafka.schema_registry_url``;
    started once per session, stopped with the stack."""
    stack.start_registry()
    return stack.schema_registry_url


@pytest.fixture
def topics(stack: LocalStack) -> TopicSettings:
    """Fresh topics for one test: requests with 3 partitions, results and dead-letter with 1."""
    # A fault-injection test that failed half-way may have left a component stopped; bring it
    # back so one failure does not cascade into every later test.
    stack.up()
    tag = uuid.uuid4().hex[:10]
    settings = TopicSettings(
        requests=f"test-{tag}.requests",
        results=f"test-{tag}.results",
        dead_letter=f"test-{tag}.dead-letter",
        cancels=f"test-{tag}.cancels",
        progress=f"test-{tag}.progress",
        partitions=3,
        replication_factor=1,
        retention_ms=3_600_000,
    )
    create_topics(stack.bootstrap_servers, plan_topics(settings))
    return settings


@pytest.fixture
def stack_settings(stack: LocalStack, topics: TopicSettings) -> Settings:
    """Settings for the stack and this test's topics; ``store.url`` is a bucket of its own,
    created on first use (``store.create_bucket``)."""
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.bootstrap_servers),
        topics=topics,
        store=StoreSettings(
            url=f"s3://test-{uuid.uuid4().hex[:12]}",
            endpoint=stack.minio_endpoint,
            access_key=stack.minio_access_key,
            secret_key=stack.minio_secret_key,
            create_bucket=True,
        ),
    )
