"""The result contract as Python values (mirrors schemas/GenerationResult.avsc)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["SUCCEEDED", "FAILED"]


@dataclass(frozen=True, slots=True)
class StoredImage:
    """Where one generated image lives, and how to check it."""

    index: int
    uri: str
    bucket: str
    key: str
    content_type: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class AppliedAdapter:
    """A LoRA adapter the images were generated with, and the sha256 of its file."""

    uri: str
    sha256: str
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class ResultError:
    code: str
    message: str
    stage: str


@dataclass(frozen=True, slots=True)
class Timings:
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue_wait_seconds: float = 0.0
    gpu_seconds: float = 0.0
    batch_size: int = 0


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    worker_id: str
    host: str
    device: str = ""
    group_id: str = ""


@dataclass(frozen=True, slots=True)
class GenerationResult:
    request_id: str
    status: Status
    worker: WorkerIdentity
    timings: Timings = field(default_factory=Timings)
    images: tuple[StoredImage, ...] = ()
    width: int = 0
    height: int = 0
    seed: int | None = None
    model: str = ""
    error: ResultError | None = None
    attempt: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    output_format: str = ""  # what the images were stored as; "" in FAILED results
    family: str = ""  # the model family (and variant) that generated the images
    dtype: str = ""  # what that model ran in
    output_quality: int | None = None  # None: lossless
    tenant: str = ""  # the request's tenant; "" where none was named or the record was broken
    adapters: tuple[AppliedAdapter, ...] = ()  # the LoRA adapters the images were made with

    def to_record(self) -> dict[str, Any]:
        # Field by field, shallow: dataclasses.asdict deep-copies every datetime and string,
        # which made it the costliest step of encoding a result (docs/benchmarks.md).
        return {
            "request_id": self.request_id,
            "status": self.status,
            "worker": _shallow(self.worker),
            "timings": _shallow(self.timings),
            "images": [_shallow(image) for image in self.images],
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "model": self.model,
            "error": None if self.error is None else _shallow(self.error),
            "attempt": self.attempt,
            "metadata": dict(self.metadata),
            "output_format": self.output_format,
            "family": self.family,
            "dtype": self.dtype,
            "output_quality": self.output_quality,
            "tenant": self.tenant,
            "adapters": [_shallow(adapter) for adapter in self.adapters],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> GenerationResult:
        error = record.get("error")
        return cls(
            request_id=record["request_id"],
            status=record["status"],
            worker=WorkerIdentity(**record["worker"]),
            timings=Timings(**record["timings"]),
            images=tuple(StoredImage(**image) for image in record.get("images", [])),
            width=record.get("width", 0),
            height=record.get("height", 0),
            seed=record.get("seed"),
            model=record.get("model", ""),
            error=ResultError(**error) if error else None,
            attempt=record.get("attempt", 1),
            metadata=dict(record.get("metadata", {})),
            output_format=record.get("output_format", ""),
            family=record.get("family", ""),
            dtype=record.get("dtype", ""),
            output_quality=record.get("output_quality"),
            tenant=record.get("tenant", ""),
            adapters=tuple(AppliedAdapter(**a) for a in record.get("adapters", [])),
        )


_FIELD_NAMES = {
    cls: tuple(f.name for f in dataclasses.fields(cls))
    for cls in (StoredImage, ResultError, Timings, WorkerIdentity, AppliedAdapter)
}


_Flat = StoredImage | ResultError | Timings | WorkerIdentity | AppliedAdapter


def _shallow(value: _Flat) -> dict[str, Any]:
    """The fields of a flat contract dataclass (its values are immutable: no copy needed)."""
    return {name: getattr(value, name) for name in _FIELD_NAMES[type(value)]}
