"""Init images for img2img: decoded, validated, resized, encoded to latents, and where in the
schedule ``strength`` starts, the two ways diffusers' img2img pipelines compute it.

How the latents are drawn from the VAE and noised to the first timestep is the model family's
(``ModelFamily.init_latents``, ``ModelFamily.noised``): DDPM's ``add_noise`` for the UNets,
flow matching's ``scale_noise`` for FLUX.1 and SD3.5.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from PIL import Image

from streamgen.errors import GenerationFailed

if TYPE_CHECKING:  # the families call this module's start-step rules
    from streamgen.engine.families import PipelineParts

__all__ = [
    "InitImageInvalid",
    "InitImageSource",
    "decode_init_image",
    "encode_init_images",
    "flow_start_step",
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

    def canonical(self, uri: str) -> str:
        """One spelling of the object ``uri`` names (``uri`` itself where it is not allowed:
        reading it then raises the refusal)."""
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
    parts: PipelineParts,
    images: torch.Tensor,
    generators: Sequence[torch.Generator],
    device: torch.device,
) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> scaled latents, as the family draws them from the posterior
    (its mean, or a sample from each row's generator, drawn before that row's noise as in
    the stock pipeline)."""
    config = parts.vae.config
    posterior = parts.vae.encode(images.to(device, parts.vae_dtype)).latent_dist
    latents = parts.family.init_latents(posterior, generators)
    if getattr(config, "shift_factor", None):
        latents = latents - config.shift_factor
    scaled: torch.Tensor = (latents * config.scaling_factor).to(parts.dtype)
    return scaled


def start_step(steps: int, strength: float) -> int:
    """Index of the first of ``steps`` timesteps to run for ``strength`` (0 < strength <= 1),
    as ``StableDiffusionImg2ImgPipeline.get_timesteps`` counts (``int(steps * strength)`` run).

    At least one step always runs: a request that asks for any change gets one.
    """
    denoised = min(max(int(steps * strength), 1), steps)
    return steps - denoised


def flow_start_step(steps: int, strength: float) -> int:
    """The same for flow matching, as ``FluxImg2ImgPipeline`` and
    ``StableDiffusion3Img2ImgPipeline`` count: the start is truncated, not the steps run, so
    4 steps at 0.8 run all 4 (DDPM's count runs 3). Any strength above 0 runs a step."""
    return int(max(steps - min(steps * strength, steps), 0))
