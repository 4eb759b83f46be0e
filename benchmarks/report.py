"""What every benchmark report carries: when, where, with which versions."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment", "write_json"]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(*, with_torch: bool = False, with_stack: bool = False) -> dict[str, Any]:
    import confluent_kafka

    env: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
        "confluent-kafka": _version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "fastavro": _version("fastavro"),
        "minio (client)": _version("minio"),
    }
    if with_torch:
        import torch

        env["torch"] = torch.__version__
        env["diffusers"] = _version("diffusers")
        env["transformers"] = _version("transformers")
        env["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    if with_stack:
        from streamgen.local.kafka import kafka_version, pom_path
        from streamgen.local.minio import MINIO_VERSION

        env["kafka broker"] = kafka_version(pom_path())
        env["minio server"] = MINIO_VERSION
    return env


def write_json(path: str | None, report: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n")
