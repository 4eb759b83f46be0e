"""From requests to image rows: what the engine refuses up front, and one row per image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.adapters import ScaledAdapter
from streamgen.engine.families import ModelFamily, PipelineParts
from streamgen.engine.types import Shape
from streamgen.errors import GenerationFailed, InvalidRequest

__all__ = ["ImageRow", "chunks", "expand_rows", "not_retryable", "reject_reason"]


@dataclass(frozen=True)
class ImageRow:
    """One image of one request: the unit the engine batches, bisects and drops."""

    slot: int  # position of the request in the ``generate`` call
    request: GenerationRequest
    seed: int  # the request's seed; this image uses seed + image_index
    image_index: int
    start: int  # first timestep index: 0 for txt2img, later for img2img by strength
    init_pixels: torch.Tensor | None = None
    adapters: tuple[ScaledAdapter, ...] = ()  # the request's LoRA adapters, loaded


def expand_rows(
    slot: int,
    request: GenerationRequest,
    seed: int,
    init_pixels: torch.Tensor | None,
    family: ModelFamily,
    adapters: tuple[ScaledAdapter, ...] = (),
) -> list[ImageRow]:
    start = 0
    if request.task == "img2img":
        start = family.img2img_start(request.steps, request.strength)
    return [
        ImageRow(slot, request, seed, i, start, init_pixels, adapters)
        for i in range(request.num_images)
    ]


def chunks(rows: Sequence[ImageRow], size: int) -> list[Sequence[ImageRow]]:
    """``rows`` in batches of at most ``size``, in order."""
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def reject_reason(
    request: GenerationRequest,
    shape: Shape,
    models: Mapping[str, PipelineParts],
    dropped: GenerationFailed | None,
) -> GenerationFailed | None:
    """Why ``request`` must not run (not retryable), or ``dropped`` (expired/cancelled), or None.

    The worker validates requests before they reach the engine; these are the checks that
    depend on the loaded models, plus a guard so that nothing malformed reaches the GPU.
    """
    if dropped is not None:
        return dropped
    try:
        _check(request, shape, models)
    except InvalidRequest as exc:
        return not_retryable(str(exc), exc.code)
    return None


def not_retryable(message: str, code: str) -> GenerationFailed:
    """A request the engine refuses, as that request's outcome: dead-lettered, not retried."""
    error = GenerationFailed(message, code=code)
    error.retryable = False
    return error


def _check(request: GenerationRequest, shape: Shape, models: Mapping[str, PipelineParts]) -> None:
    if shape.model not in models:
        raise InvalidRequest("model", shape.model, f"must be one of {sorted(models)}")
    # The family's limits: size multiple, steps, scheduler, guidance, negative prompt, img2img.
    models[shape.model].rules.check(request, shape.scheduler)
    if request.steps < 1:
        raise InvalidRequest("steps", request.steps, "must be >= 1")
    if request.num_images < 1:
        raise InvalidRequest("num_images", request.num_images, "must be >= 1")
    if request.task == "img2img":
        if not request.init_image_uri:
            raise InvalidRequest("init_image_uri", request.init_image_uri, "required for img2img")
        if not 0.0 < request.strength <= 1.0:
            raise InvalidRequest("strength", request.strength, "must be in (0, 1]")
    elif request.task != "txt2img":
        raise InvalidRequest("task", request.task, "must be txt2img or img2img")
