"""A progress event on the progress topic (``topics.progress``, with ``worker.progress`` on):
what workers write while a request moves and ``streamgen submit --wait`` shows.

Avro like the result (``schemas/GenerationProgress.avsc``, registered under
``<topic>-value`` with a registry), keyed by request id so one request's events stay in one
partition, in order. Advisory: a missing or repeated event says nothing about the request's
outcome; only its result event does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from confluent_kafka.schema_registry import SchemaRegistryClient

from streamgen.contracts.codec import AvroCodec, Contract
from streamgen.contracts.registry import registry_client
from streamgen.settings import KafkaSettings

__all__ = [
    "PROGRESS_CONTRACT",
    "PROGRESS_SCHEMA",
    "GenerationProgress",
    "ProgressStage",
    "progress_codec",
]

PROGRESS_SCHEMA = "dev.streamgen.GenerationProgress"

# In the order a request passes them; OTHER is what a reader of this version makes of a stage
# a later schema adds (the enum's default).
ProgressStage = Literal["PICKED_UP", "BATCH_STARTED", "DENOISING", "STORED", "OTHER"]


@dataclass(frozen=True, slots=True)
class GenerationProgress:
    request_id: str
    stage: ProgressStage
    timestamp: datetime  # timezone-aware
    worker_id: str = ""
    step: int = 0  # DENOISING: steps done, 1..steps
    steps: int = 0  # DENOISING: the steps the request's batch runs

    def to_record(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "stage": self.stage,
            "step": self.step,
            "steps": self.steps,
            "worker_id": self.worker_id,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> GenerationProgress:
        return cls(
            request_id=record["request_id"],
            stage=record.get("stage", "OTHER"),
            timestamp=record["timestamp"],
            worker_id=record.get("worker_id", ""),
            step=record.get("step", 0),
            steps=record.get("steps", 0),
        )


PROGRESS_CONTRACT: Contract[GenerationProgress] = Contract(
    PROGRESS_SCHEMA,
    "GenerationProgress",
    GenerationProgress.from_record,
    GenerationProgress.to_record,
)


def progress_codec(
    kafka: KafkaSettings, topic: str, *, registry: SchemaRegistryClient | None = None
) -> AvroCodec[GenerationProgress]:
    """The codec for progress events on ``topic``; ``registry`` overrides the settings' one."""
    return AvroCodec(PROGRESS_CONTRACT, topic=topic, registry=registry or registry_client(kafka))
