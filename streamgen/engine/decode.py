"""Latents to pixels, with the checks that stop a broken image from being stored as a success."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from streamgen.engine.batch_failures import FailureKind, classify_device_error
from streamgen.engine.families import PipelineParts
from streamgen.engine.memory import free_device_memory
from streamgen.errors import GenerationFailed

__all__ = ["Decoder", "check_latents", "check_pixels", "decode_latents", "to_images"]

# Scaled latents to images in [-1, 1]: ``vae.decode`` eagerly, or its CUDA graph (``graphs``).
Decoder = Callable[[torch.Tensor], torch.Tensor]


def check_latents(latents: torch.Tensor) -> list[GenerationFailed | None]:
    """Per row: an error if the latents hold NaN or inf (the image would be garbage)."""
    finite = torch.isfinite(latents.float()).flatten(1).all(dim=1).tolist()
    return [
        None if ok else GenerationFailed("latents hold NaN or inf", code="NON_FINITE_LATENTS")
        for ok in finite
    ]


def check_pixels(pixels: np.ndarray) -> list[GenerationFailed | None]:
    """Per row: an error if the decoded image is all black (a typical fp16 overflow result)."""
    brightest = pixels.reshape(pixels.shape[0], -1).max(axis=1)
    return [
        None if level > 0 else GenerationFailed("decoded image is all black", code="BLACK_IMAGE")
        for level in brightest
    ]


def decode_latents(
    parts: PipelineParts, latents: torch.Tensor, decoder: Decoder | None = None
) -> np.ndarray:
    """Decode (B, C, h, w) latents to (B, H, W, 3) uint8 pixels, in halves if memory is short.

    The decoder's activations at full resolution dwarf the denoiser's: a batch that denoised fine
    can still run out of memory here, and redoing the whole denoising for that would be waste.
    """
    try:
        return _decode(parts, latents, decoder)
    except Exception as exc:
        if classify_device_error(exc) is not FailureKind.OUT_OF_MEMORY or latents.shape[0] == 1:
            raise
    free_device_memory()
    mid = latents.shape[0] // 2
    return np.concatenate(
        [
            decode_latents(parts, latents[:mid], decoder),
            decode_latents(parts, latents[mid:], decoder),
        ]
    )


@torch.no_grad()
def _decode(parts: PipelineParts, latents: torch.Tensor, decoder: Decoder | None) -> np.ndarray:
    scaled = parts.family.vae_input(parts, latents)
    decode = decoder or (lambda z: parts.vae.decode(z, return_dict=False)[0])
    images = decode(scaled)
    images = (images.float() / 2 + 0.5).clamp(0, 1)
    # Round, not truncate, so a value a hair below a level does not drop one level.
    pixels = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    array: np.ndarray = pixels.cpu().numpy()
    return array


def to_images(pixels: np.ndarray, rows: Sequence[int]) -> list[Image.Image]:
    return [Image.fromarray(pixels[i]) for i in rows]
