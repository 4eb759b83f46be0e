"""docker-compose.yml cannot be run here (no Docker), so what must match the local stack is
checked against the code: versions, host ports, credentials and STREAMGEN_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from streamgen.contracts.registry import EVOLUTION_COMPATIBILITY
from streamgen.local.kafka import kafka_version, pom_path
from streamgen.local.minio import MINIO_VERSION
from streamgen.local.registry import registry_pom_path, registry_version
from streamgen.local.stack import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_KAFKA_PORT,
    DEFAULT_MINIO_CONSOLE_PORT,
    DEFAULT_MINIO_PORT,
    DEFAULT_REGISTRY_PORT,
    DEFAULT_SECRET_KEY,
    LocalStack,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(compose["services"])


def host_ports(service: dict[str, Any]) -> set[int]:
    return {int(mapping.split(":")[-2]) for mapping in service.get("ports", [])}


def test_versions_match_the_local_stack(services: dict[str, Any]) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version(pom_path())}"
    assert services["minio"]["build"]["args"]["MINIO_VERSION"] == MINIO_VERSION
    assert services["minio"]["image"].endswith(f":{MINIO_VERSION}")
    apicurio = registry_version(registry_pom_path())
    assert services["registry"]["image"] == f"apicurio/apicurio-registry-mem:{apicurio}"


def test_the_registry_refuses_breaking_schemas_as_the_local_stack_does(
    services: dict[str, Any],
) -> None:
    environment = services["registry"]["environment"]
    assert environment["REGISTRY_RULES_GLOBAL_COMPATIBILITY"] == EVOLUTION_COMPATIBILITY


def test_host_ports_match_the_local_stack(services: dict[str, Any]) -> None:
    assert host_ports(services["kafka"]) == {DEFAULT_KAFKA_PORT}
    assert host_ports(services["minio"]) == {DEFAULT_MINIO_PORT, DEFAULT_MINIO_CONSOLE_PORT}
    assert host_ports(services["registry"]) == {DEFAULT_REGISTRY_PORT}
    assert (
        f"HOST://127.0.0.1:{DEFAULT_KAFKA_PORT}"
        in (services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"])
    )


def test_credentials_and_env_names_match_the_local_stack(
    services: dict[str, Any], tmp_path: Path
) -> None:
    minio_env = services["minio"]["environment"]
    assert (minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"]) == (
        DEFAULT_ACCESS_KEY,
        DEFAULT_SECRET_KEY,
    )
    streamgen_env = services["init"]["environment"]
    local_env = LocalStack(tmp_path).env()
    assert set(streamgen_env) == set(local_env)
    assert streamgen_env["STREAMGEN_STORE_ACCESS_KEY"] == local_env["STREAMGEN_STORE_ACCESS_KEY"]
    assert streamgen_env["STREAMGEN_STORE_SECRET_KEY"] == local_env["STREAMGEN_STORE_SECRET_KEY"]
    assert streamgen_env["STREAMGEN_STORE_URL"] == local_env["STREAMGEN_STORE_URL"]
    # Same API path on both stacks; only the host differs.
    assert streamgen_env["STREAMGEN_KAFKA_SCHEMA_REGISTRY_URL"].endswith(
        local_env["STREAMGEN_KAFKA_SCHEMA_REGISTRY_URL"].partition("8081")[2]
    )


def test_the_worker_runs_streamgen_worker_on_a_reserved_gpu(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["command"][0] == "worker"
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert "gpu" in device["capabilities"]
    assert services["init"]["command"] == ["topics", "create"]


def test_every_mounted_or_built_file_exists(services: dict[str, Any]) -> None:
    for service in services.values():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
