"""Init images for img2img: fetched, validated, resized, encoded, and noised to ``strength``."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from streamgen.engine.families import PipelineParts
from streamgen.errors import GenerationFailed

__all__ = [
    "InitImageInvalid",
    "InitImageSource",
    "decode_init_image",
    "encode_init_images",
    "group_by_start",
    "start_step",
]

# Decompression bombs: a tiny file that expands to gigapixels would exhaust host memory.
MAX_INIT_PIXELS = 8192 * 8192


class InitImageInvalid(GenerationFailed):
    """The init image cannot be used; retrying will not help."""

    code = "INIT_IMAGE_INVALID"
    retryable = False


class InitImageSource(Protocol):
    """Where init images come from (``streamgen.store.init_images.InitImageReader``)."""

    def read(self, uri: str) -> bytes:
        """The image's bytes; InvalidRequest (not allowed), FileNotFoundError, ObjectTooLarge,
        StoreUnavailable (transient)."""
        ...


def decode_init_image(data: bytes, *, width: int, height: int) -> torch.Tensor:
    """Bytes of any PIL-readable image -> (3, height, width) float tensor in [-1, 1]."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_INIT_PIXELS:
                raise InitImageInvalid(
                    f"init image is {image.width}x{image.height}; at most {MAX_INIT_PIXELS} pixels"
                )
            rgb = image.convert("RGB")
    except InitImageInvalid:
        raise
    except Exception as exc:  # PIL's plugins raise many kinds (OSError, SyntaxError, ...)
        raise InitImageInvalid(f"init image cannot be decoded: {exc}") from exc
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0)
    return pixels.permute(2, 0, 1)


@torch.no_grad()
def encode_init_images(
    parts: PipelineParts, images: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> scaled latents: the posterior mean, so deterministic."""
    config = parts.vae.config
    posterior = parts.vae.encode(images.to(device, parts.vae_dtype)).latent_dist
    latents = posterior.mean
    if getattr(config, "shift_factor", None):
        latents = latents - config.shift_factor
    scaled: torch.Tensor = (latents * config.scaling_factor).to(parts.dtype)
    return scaled


def start_step(steps: int, strength: float) -> int:
    """Index of the first of ``steps`` timesteps to run for ``strength`` (0 < strength <= 1).

    At least one step always runs: a request that asks for any change gets one.
    """
    denoised = min(max(int(steps * strength), 1), steps)
    return steps - denoised


def group_by_start(starts: Sequence[int]) -> dict[int, list[int]]:
    """Row indices per start step: rows that start at different timesteps cannot share a loop."""
    groups: dict[int, list[int]] = {}
    for row, start in enumerate(starts):
        groups.setdefault(start, []).append(row)
    return groups
