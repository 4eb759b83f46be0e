"""The request contract as a Python value (mirrors schemas/GenerationRequest.avsc)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Task = Literal["txt2img", "img2img"]


@dataclass(frozen=True, slots=True)
class Adapter:
    """One LoRA adapter a request names: a safetensors file in the store, and its weight."""

    uri: str
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One image-generation request, as decoded from the requests topic.

    Times are timezone-aware ``datetime``s (Avro ``timestamp-millis``).
    """

    request_id: str
    prompt: str
    negative_prompt: str = ""
    model: str = "default"
    task: Task = "txt2img"
    init_image_uri: str | None = None
    strength: float = 0.8
    width: int = 512
    height: int = 512
    steps: int = 30
    guidance_scale: float = 7.5
    seed: int | None = None
    num_images: int = 1
    scheduler: str | None = None
    deadline: datetime | None = None
    priority: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    # None: the worker's store.image_format; quality None: the format's default or lossless
    # (contracts.formats says which).
    output_format: str | None = None
    output_quality: int | None = None
    # Who the request is for; "" is the default tenant (worker.tenants shares the GPU by it).
    tenant: str = ""
    # LoRA adapters for this request alone, in order (validation checks count, place, scale).
    adapters: tuple[Adapter, ...] = ()

    def __post_init__(self) -> None:
        # Avro records and JSON input carry adapters as a list of maps; anything else is left
        # as it is for validation to name.
        adapters = self.adapters
        if isinstance(adapters, list | tuple):
            object.__setattr__(self, "adapters", tuple(_adapter(item) for item in adapters))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> GenerationRequest:
        """Build from a decoded Avro record (unknown keys are ignored: newer writers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def to_record(self) -> dict[str, Any]:
        """The Avro record for this request (all fields of the current schema)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        record["adapters"] = [
            {"uri": a.uri, "scale": a.scale} if isinstance(a, Adapter) else a for a in self.adapters
        ]
        return record

    def replace(self, **changes: Any) -> GenerationRequest:
        return dataclasses.replace(self, **changes)


def _adapter(item: Any) -> Any:
    if isinstance(item, Mapping) and set(item) <= {"uri", "scale"} and "uri" in item:
        return Adapter(**item)
    return item
