"""The worker and `streamgen submit` through the secure broker's SASL_SSL listener, verifying
its certificate against the CA `dev up --secure` generated; a wrong CA stops start-up at once.

The listener is a real TLS listener of the real broker (a PKCS#12 keystore whose certificate the
stack's own CA signed), and librdkafka verifies the chain and the host name as it does in
production: ``enable.ssl.certificate.verification`` is on (said explicitly below).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from streamgen.contracts.codec import result_codec
from streamgen.listener_probe import Listener, identify_listener
from streamgen.local.stack import LocalStack
from streamgen.local.tls import new_ca
from streamgen.settings import Settings
from tests.integration.worker.conftest import settings_env, wait_until
from tests.integration.worker.test_secure_broker import (
    REQUESTS,
    committed_everything,
    secure_settings,
)
from tests.integration.worker.test_startup import assert_refused
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

__all__ = ["secure_settings"]  # the fixture, shared with test_secure_broker

VERIFY = {"enable.ssl.certificate.verification": "true"}  # librdkafka's default, made visible


def over_tls(
    stack: LocalStack, settings: Settings, user: str, ca_file: Path | None = None
) -> Settings:
    """``settings`` pointed at the TLS listener as ``user``, trusting ``ca_file`` (default:
    the stack's CA)."""
    login = {**stack.kafka_client_config(user, tls=True), **VERIFY}
    if ca_file is not None:
        login["ssl.ca.location"] = str(ca_file)
    kafka = replace(
        settings.kafka,
        bootstrap_servers=stack.kafka_tls_bootstrap_servers,
        client_config=login,
    )
    return replace(settings, kafka=kafka)


@pytest.fixture
def tls_worker(
    secure_stack: LocalStack, secure_settings: Settings, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    settings = over_tls(secure_stack, secure_settings, "worker")
    log_file = tmp_path / "worker.log"
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamgen", "worker"], env=env, stdout=out, stderr=out
        )
    try:
        yield process, log_file
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_a_worker_and_submit_work_through_the_tls_listener(
    secure_stack: LocalStack,
    secure_settings: Settings,
    tls_worker: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log_file = tls_worker
    started = wait_until(
        lambda: process.poll() is not None or "consuming" in log_file.read_text(), timeout=180
    )
    assert started and process.poll() is None, log_file.read_text()[-3000:]
    producer = over_tls(secure_stack, secure_settings, "producer")
    command = [
        sys.executable, "-m", "streamgen", "submit", "--topic", secure_settings.topics.requests,
        "--count", str(REQUESTS), "--prompt", "a red bicycle", "--model", "tiny",
        "--width", "64", "--height", "64", "--steps", "2", "--seed", "7",
        "--timeout", "60", "--json",
    ]  # fmt: skip
    env = {
        **os.environ,
        "STREAMGEN_KAFKA_BOOTSTRAP_SERVERS": producer.kafka.bootstrap_servers,
        "STREAMGEN_KAFKA_CLIENT_CONFIG": ",".join(
            f"{k}={v}" for k, v in producer.kafka.client_config.items()
        ),
    }
    # The producer may write requests only (no --wait): the results are read below, through
    # the same TLS listener, as admin.
    sent = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    admin = over_tls(secure_stack, secure_settings, "admin")
    messages = consume_all(
        admin.kafka.bootstrap_servers,
        secure_settings.topics.results,
        expected=REQUESTS,
        timeout=240,
        client_config=admin.kafka.client_config,
    )
    codec = result_codec(secure_settings.kafka, secure_settings.topics.results)
    statuses = [codec.decode(m.value()).status for m in messages]
    assert statuses == ["SUCCEEDED"] * REQUESTS, log_file.read_text()[-3000:]
    assert wait_until(lambda: committed_everything(secure_stack, secure_settings), timeout=30)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, log_file.read_text()[-3000:]


def test_a_wrong_ca_stops_start_up_naming_kafka_client_config(
    secure_stack: LocalStack, secure_settings: Settings, tmp_path: Path
) -> None:
    _, stranger = new_ca("not the stack's CA")
    wrong_ca = tmp_path / "wrong-ca.pem"
    wrong_ca.write_bytes(stranger.public_bytes(serialization.Encoding.PEM))
    settings = over_tls(secure_stack, secure_settings, "worker", wrong_ca)
    # A connect timeout far past start_worker's own bound (killed after 120 s): the refusal
    # must come from the failed handshake librdkafka reported, not from the timeout.
    line = assert_refused(
        settings, "kafka.client_config", "TLS handshake", "ssl.ca.location", kafka_timeout_s=600.0
    )
    assert "certificate verify failed" in line, line


def test_the_listener_probe_tells_the_secure_brokers_listeners_apart(
    secure_stack: LocalStack,
) -> None:
    """What start-up's probe (streamgen.listener_probe) makes of the real listeners."""
    plain = secure_stack.bootstrap_servers.rpartition(":")[2]
    tls = secure_stack.kafka_tls_bootstrap_servers.rpartition(":")[2]
    store = secure_stack.minio_endpoint.rpartition(":")[2]
    assert identify_listener("127.0.0.1", int(plain)) is Listener.KAFKA
    assert identify_listener("127.0.0.1", int(tls)) is Listener.TLS
    assert identify_listener("127.0.0.1", int(store)) is Listener.HTTP
