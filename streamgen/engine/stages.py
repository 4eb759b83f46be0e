"""One batch through the diffusion stages, as a diffusers pipeline call reads.

Text conditioning, timesteps, starting latents (each row from its own generator), denoise
(rows of cancelled or expired requests leave between steps), decode and check. The
:class:`~streamgen.engine.engine.DiffusionEngine` owns the loaded models, the batch limits and
the warm-up, and calls :func:`run_batch` for every batch it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL.Image import Image

from streamgen.contracts.request import GenerationRequest
from streamgen.engine import img2img
from streamgen.engine.adapters import RowAdapters, adapters_applied
from streamgen.engine.decode import (
    Decoder,
    check_latents,
    check_pixels,
    decode_latents,
    to_images,
)
from streamgen.engine.denoise import DenoiseBatch, DropCheck, StepDone, denoise, initial_noise
from streamgen.engine.families import ModelFamily, NoisePredictor, PipelineParts
from streamgen.engine.knobs import Placement
from streamgen.engine.requests import ImageRow, expand_rows
from streamgen.engine.seeds import generator_for
from streamgen.engine.types import Shape, StepObserver
from streamgen.errors import GenerationFailed

__all__ = ["RowResult", "run_batch", "synthetic_rows"]


@dataclass
class RowResult:
    """One image row's result: its image or its error, and the batch it ran in."""

    image: Image | None = None
    error: GenerationFailed | None = None
    seconds: float = 0.0
    batch_size: int = 0


def run_batch(
    parts: PipelineParts,
    place: Placement,
    shape: Shape,
    rows: Sequence[ImageRow],
    *,
    runners: Callable[[], tuple[NoisePredictor, Decoder | None]],
    device: torch.device,
    dropped_reason: Callable[[GenerationRequest], GenerationFailed | None],
    on_step: StepObserver | None = None,
) -> list[RowResult]:
    """One result per row. ``runners`` gives the denoiser and VAE to run (eager, CUDA graphs,
    AOT packages); the model's family says how to encode, schedule and lay out latents;
    ``dropped_reason`` says, between steps, why a request must leave the batch, if it must;
    ``on_step`` hears of each step done (the worker's progress events)."""
    began = time.perf_counter()
    predict, decoder = runners()
    requests = [row.request for row in rows]
    family = parts.family
    # 1. Text conditioning.
    with place.on_device(*parts.text_encoders):
        conditioning = family.encode(
            parts,
            [r.prompt for r in requests],
            [r.negative_prompt for r in requests],
            width=shape.width,
            height=shape.height,
            device=device,
        )
    # 2. Timesteps; img2img rows start part-way (all rows of a batch share the start).
    latent_shape = family.latent_shape(parts, shape.width, shape.height)
    scheduler = family.make_scheduler(shape.scheduler, parts)
    family.set_timesteps(scheduler, shape.steps, latent_shape, device)
    first = rows[0].start * scheduler.order
    timesteps = scheduler.timesteps[first:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(first)
    # 3. Starting latents, from each row's own generator. An init image's latents come first:
    #    a family that samples the VAE's posterior draws from the generator before the noise.
    generators = [generator_for(row.seed, row.image_index) for row in rows]
    clean = None
    if shape.task == "img2img":
        pixels = torch.stack([row.init_pixels for row in rows if row.init_pixels is not None])
        with place.on_device(parts.vae):
            clean = img2img.encode_init_images(parts, pixels, generators, device)
    noise = initial_noise(generators, latent_shape, device=device, dtype=parts.dtype)
    if clean is not None:
        latents = family.noised(scheduler, clean, noise, timesteps[:1].repeat(len(rows)))
    else:
        # Flow-matching schedulers start at sigma 1 and have no init_noise_sigma.
        latents = noise * getattr(scheduler, "init_noise_sigma", 1.0)
    guidance = [r.guidance_scale for r in requests]
    batch = DenoiseBatch(
        latents=latents,
        conditioning=conditioning,
        guidance=torch.tensor(guidance, device=device, dtype=torch.float32),
        generators=generators,
        timesteps=timesteps,
    )
    # 4. Denoise, each row with its own adapters; rows of cancelled or expired requests leave
    #    between steps (and their adapters' rows with them).
    dropped: dict[int, GenerationFailed] = {}
    adapted = RowAdapters.of([row.adapters for row in rows], device)
    drop = _dropping(rows, dropped_reason, dropped, adapted)
    stepped = None if on_step is None else _reporting(on_step, rows, len(timesteps))
    with place.on_device(parts.denoiser), adapters_applied(parts.denoiser, adapted):
        latents, alive = denoise(predict, scheduler, batch, drop=drop, on_step=stepped)
    # 5. Decode what is finite; an image that is NaN, inf or black is an error, not a result.
    errors = dict(zip(alive, check_latents(latents), strict=True))
    finite = [k for k, row in enumerate(alive) if errors[row] is None]
    images: dict[int, Image] = {}
    if finite:
        with place.on_device(parts.vae):
            pixels_out = decode_latents(parts, latents[finite], decoder)
        for k, error, image in zip(
            finite,
            check_pixels(pixels_out),
            to_images(pixels_out, range(len(finite))),
            strict=True,
        ):
            errors[alive[k]] = error
            images[alive[k]] = image
    seconds = time.perf_counter() - began
    results = []
    for i in range(len(rows)):
        error = dropped.get(i) or errors.get(i)
        results.append(RowResult(None if error else images[i], error, seconds, len(rows)))
    return results


def _dropping(
    rows: Sequence[ImageRow],
    dropped_reason: Callable[[GenerationRequest], GenerationFailed | None],
    dropped: dict[int, GenerationFailed],
    adapted: RowAdapters | None,
) -> DropCheck:
    """``denoise``'s drop check: records why each row leaves in ``dropped``."""

    def drop(alive: Sequence[int]) -> set[int]:
        # Asked once per request and step, however many images the request has.
        reasons = {
            r.request_id: dropped_reason(r)
            for r in {rows[i].request.request_id: rows[i].request for i in alive}.values()
        }
        for i in alive:
            reason = reasons[rows[i].request.request_id]
            if reason is not None:
                dropped[i] = reason
        if adapted is not None:
            adapted.keep([i for i in alive if i not in dropped])
        return {i for i in alive if i in dropped}

    return drop


def _reporting(on_step: StepObserver, rows: Sequence[ImageRow], steps: int) -> StepDone:
    """``denoise``'s step callback in request ids, each request once however many images."""

    def stepped(step: int, alive: Sequence[int]) -> None:
        on_step(list(dict.fromkeys(rows[i].request.request_id for i in alive)), step + 1, steps)

    return stepped


def synthetic_rows(shape: Shape, size: int, family: ModelFamily) -> list[ImageRow]:
    """Rows for probing and warm-up: the shape's real tensor sizes, no real request behind them."""
    request = GenerationRequest(
        request_id="warm-up",
        prompt="warm-up",
        model=shape.model,
        task=shape.task,
        width=shape.width,
        height=shape.height,
        steps=shape.steps,
        scheduler=shape.scheduler,
        num_images=size,
        seed=0,
    )
    pixels = torch.zeros(3, shape.height, shape.width) if shape.task == "img2img" else None
    return expand_rows(0, request, 0, pixels, family)
