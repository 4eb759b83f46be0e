"""Pure parts of the local stack: pinned versions, cluster ids and the state file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from streamgen.local.kafka import KafkaBroker, kafka_version, new_cluster_id, pom_path
from streamgen.local.process import LocalStackError
from streamgen.local.registry import registry_pom_path, registry_version
from streamgen.local.stack import LocalStack


def test_the_kafka_version_comes_from_the_pom(tmp_path: Path) -> None:
    assert re.fullmatch(r"4\.\d+\.\d+", kafka_version(pom_path()))
    broken = tmp_path / "pom.xml"
    broken.write_text('<project xmlns="http://maven.apache.org/POM/4.0.0"></project>')
    with pytest.raises(LocalStackError, match=r"no <kafka\.version>"):
        kafka_version(broken)


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")


def test_a_new_state_dir_takes_the_ports_asked_for(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path / "s", kafka_port=1234, minio_port=2345)
    assert stack.bootstrap_servers == "127.0.0.1:1234"
    assert stack.minio_endpoint == "127.0.0.1:2345"
    assert (stack.state.controller_port, stack.state.minio_console_port) == (9093, 9001)
    assert not stack.exists()  # nothing is written before `up`
    assert stack.env()["STREAMGEN_STORE_ENDPOINT"] == "127.0.0.1:2345"


def test_an_existing_state_dir_keeps_its_ports(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps({"kafka_port": 4000, "controller_port": 4001, "cluster_id": "abc"})
    )
    stack = LocalStack(tmp_path)
    assert stack.bootstrap_servers == "127.0.0.1:4000"
    assert LocalStack(tmp_path, kafka_port=4000).bootstrap_servers == "127.0.0.1:4000"
    with pytest.raises(LocalStackError, match="kafka_port=4000, not 5000"):
        LocalStack(tmp_path, kafka_port=5000)


def test_a_foreign_state_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"something": "else"}')
    with pytest.raises(LocalStackError, match="not a streamgen state file"):
        LocalStack(tmp_path)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(LocalStackError, match="cannot read"):
        LocalStack(tmp_path)


def test_the_broker_config_is_a_single_kraft_node_on_localhost(tmp_path: Path) -> None:
    broker = KafkaBroker(home=tmp_path, port=1111, controller_port=2222, cluster_id="x")
    broker._write_config()
    config = dict(
        line.split("=", 1) for line in broker.config_file.read_text().splitlines() if line
    )
    assert config["process.roles"] == "broker,controller"
    assert config["controller.quorum.voters"] == "1@127.0.0.1:2222"
    assert config["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1111"
    assert config["log.dirs"] == str(tmp_path / "data")
    assert f"{tmp_path}/logs/server.log" in (tmp_path / "log4j2.properties").read_text()


def test_a_secure_stack_stays_secure_and_logs_clients_in(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, secure=True)
    stack._save()  # what `up` writes before it starts anything
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    again = LocalStack(tmp_path)  # `dev up` without --secure
    assert again.secure
    assert again.state.kafka_passwords == stack.state.kafka_passwords
    login = again.kafka_client_config("worker")
    assert login["security.protocol"] == "SASL_PLAINTEXT"
    assert login["sasl.mechanism"] == "SCRAM-SHA-512"
    assert login["sasl.username"] == "worker"
    exported = again.env()["STREAMGEN_KAFKA_CLIENT_CONFIG"]
    assert f"sasl.password={stack.state.kafka_passwords['worker']}" in exported.split(",")
    # Passwords differ per user (and the TLS keystore) and per state dir.
    assert len(set(stack.state.kafka_passwords.values())) == 6
    other = LocalStack(tmp_path / "other", secure=True).state.kafka_passwords
    assert not set(other.values()) & set(stack.state.kafka_passwords.values())


def test_security_cannot_be_switched_on_an_existing_state_dir(tmp_path: Path) -> None:
    LocalStack(tmp_path)._save()
    assert not LocalStack(tmp_path).secure
    assert "STREAMGEN_KAFKA_CLIENT_CONFIG" not in LocalStack(tmp_path).env()
    with pytest.raises(LocalStackError, match="secure=False, not True"):
        LocalStack(tmp_path, secure=True)


def test_the_secure_broker_wants_logins_and_denies_what_no_acl_allows(tmp_path: Path) -> None:
    stack = LocalStack(
        tmp_path, kafka_port=1111, controller_port=2222, kafka_tls_port=3333, secure=True
    )
    stack.kafka._write_config()
    config = dict(
        line.split("=", 1) for line in stack.kafka.config_file.read_text().splitlines() if line
    )
    assert stack.kafka.config_file.stat().st_mode & 0o777 == 0o600  # it holds passwords
    assert config["listeners"] == (
        "SASL_PLAINTEXT://127.0.0.1:1111,SASL_SSL://127.0.0.1:3333,CONTROLLER://127.0.0.1:2222"
    )
    assert config["listener.security.protocol.map"] == (
        "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    )
    assert config["ssl.keystore.location"] == str(tmp_path / "kafka" / "tls" / "broker.p12")
    assert config["ssl.keystore.type"] == "PKCS12"
    assert config["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert config["authorizer.class.name"].endswith(".StandardAuthorizer")
    assert config["allow.everyone.if.no.acl.found"] == "false"
    assert config["super.users"] == "User:broker;User:controller;User:admin"
    assert config["advertised.listeners"] == (
        "SASL_PLAINTEXT://127.0.0.1:1111,SASL_SSL://127.0.0.1:3333"
    )
    tls_login = stack.kafka_client_config("worker", tls=True)
    assert tls_login["security.protocol"] == "SASL_SSL"
    assert tls_login["ssl.ca.location"] == str(tmp_path / "kafka" / "tls" / "ca.pem")
    assert stack.kafka_tls_bootstrap_servers == "127.0.0.1:3333"
    # SCRAM users are written at format time; the controller logs in with PLAIN instead.
    assert stack.kafka.security is not None
    scram = " ".join(stack.kafka.security.format_arguments())
    assert sorted(re.findall(r"name=(\w+),", scram)) == ["admin", "broker", "producer", "worker"]


def test_dev_env_marks_local_credentials_as_development_only(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from streamgen.cli.dev import dev

    stack = LocalStack(tmp_path, secure=True)
    stack._save()
    out = CliRunner().invoke(dev, ["--state-dir", str(tmp_path), "env"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("# Development only")
    assert all(line.startswith("export STREAMGEN_") for line in lines[1:])
    assert any("sasl.username=worker" in line for line in lines)


def test_the_registry_version_comes_from_its_pom(tmp_path: Path) -> None:
    assert re.fullmatch(r"2\.\d+\.\d+\.Final", registry_version(registry_pom_path()))
    broken = tmp_path / "pom.xml"
    broken.write_text('<project xmlns="http://maven.apache.org/POM/4.0.0"></project>')
    with pytest.raises(LocalStackError, match=r"no <apicurio\.version>"):
        registry_version(broken)


def test_a_new_stack_has_a_registry_and_exports_its_url(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path / "s", registry_port=3456)
    assert stack.state.registry
    url = "http://127.0.0.1:3456/apis/ccompat/v6"
    assert stack.schema_registry_url == url
    assert stack.env()["STREAMGEN_KAFKA_SCHEMA_REGISTRY_URL"] == url
    assert "STREAMGEN_KAFKA_SCHEMA_REGISTRY_URL" not in LocalStack(tmp_path, registry=False).env()


def test_a_state_file_from_before_the_registry_gets_one_on_the_default_port(
    tmp_path: Path,
) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"kafka_port": 4000, "cluster_id": "abc"}))
    stack = LocalStack(tmp_path)
    assert (stack.state.registry, stack.state.registry_port) == (True, 8081)
    with pytest.raises(LocalStackError, match="registry_port=8081, not 9999"):
        LocalStack(tmp_path, registry_port=9999)


def test_turning_the_registry_off_is_saved_with_the_state(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, registry=False)
    stack._save()
    assert not LocalStack(tmp_path).state.registry
    assert LocalStack(tmp_path, registry=True).state.registry


def test_dev_env_tls_points_at_the_sasl_ssl_listener_and_the_stack_ca(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from streamgen.cli.dev import dev

    stack = LocalStack(tmp_path / "secure", kafka_tls_port=3333, secure=True)
    stack._save()
    out = CliRunner().invoke(dev, ["--state-dir", str(stack.state_dir), "env", "--tls"])
    assert out.exit_code == 0, out.output
    assert "export STREAMGEN_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:3333" in out.output
    ca = stack.state_dir / "kafka" / "tls" / "ca.pem"
    assert f"ssl.ca.location={ca}" in out.output
    assert "security.protocol=SASL_SSL" in out.output
    plain = LocalStack(tmp_path / "plain")
    plain._save()
    refused = CliRunner().invoke(dev, ["--state-dir", str(plain.state_dir), "env", "--tls"])
    assert refused.exit_code == 1
    assert "no TLS listener" in refused.output
