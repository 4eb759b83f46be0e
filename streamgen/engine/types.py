"""What the worker hands the engine and gets back. No Kafka, no storage here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL.Image import Image

from streamgen.contracts.request import GenerationRequest, Task
from streamgen.contracts.result import AppliedAdapter
from streamgen.errors import GenerationFailed

__all__ = ["CancelCheck", "Engine", "GenerationOutcome", "Shape", "StepObserver", "shape_of"]


@dataclass(frozen=True, slots=True)
class Shape:
    """Requests of one shape can share a forward pass (they differ only in prompt, seed, CFG)."""

    model: str
    task: Task
    width: int
    height: int
    steps: int
    scheduler: str


def shape_of(request: GenerationRequest, default_scheduler: str) -> Shape:
    return Shape(
        model=request.model,
        task=request.task,
        width=request.width,
        height=request.height,
        steps=request.steps,
        scheduler=request.scheduler or default_scheduler,
    )


@dataclass(frozen=True, slots=True)
class GenerationOutcome:
    """The result for one request of a batch: images (on success) or a per-request error.

    ``seed`` is the seed actually used (image ``i`` used ``seed + i``).
    """

    request: GenerationRequest
    seed: int
    images: tuple[Image, ...] = ()
    error: GenerationFailed | None = None
    gpu_seconds: float = 0.0
    batch_size: int = 0
    family: str = ""  # the model's family and variant, e.g. "sdxl", "flux [dev]"
    dtype: str = ""  # what the model ran in, e.g. "bfloat16"
    adapters: tuple[AppliedAdapter, ...] = ()  # the LoRA adapters the images were made with

    @property
    def ok(self) -> bool:
        return self.error is None

    def with_adapters(self, used: Sequence[Any]) -> GenerationOutcome:
        """This outcome recording ``used`` (``ScaledAdapter``s), if it has images."""
        if not self.ok or not used:
            return self
        applied = tuple(AppliedAdapter(a.adapter.uri, a.adapter.sha256, a.scale) for a in used)
        return dataclasses.replace(self, adapters=applied)


# Called between denoising steps with a request id: True drops the request from the batch.
CancelCheck = Callable[[GenerationRequest], bool]

# Called on the GPU thread after each denoising step with the ids of the requests still in the
# batch, the steps done (1..steps) and the steps the batch runs. It must return at once: with
# CUDA graphs or AOT packages too, the loop over steps is Python, and this runs in it.
StepObserver = Callable[[Sequence[str], int, int], None]


class Engine(Protocol):
    """Turns one batch of same-shape requests into images.

    ``generate`` returns one outcome per request, in order. Per-request failures (bisected
    out of the batch, NaN latents, black images, OOM alone, cancellation, a bad init image,
    anything else a request's fields cause) are outcomes with an ``error``. It raises only
    :class:`streamgen.errors.DeviceLost` (fatal) and :class:`streamgen.errors.StoreUnavailable`
    (an init image cannot be read yet: the caller repeats the call after a backoff).
    """

    def shape_of(self, request: GenerationRequest) -> Shape: ...

    def max_batch_size(self, shape: Shape) -> int: ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]: ...
