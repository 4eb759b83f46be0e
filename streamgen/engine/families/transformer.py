"""What the flow-matching transformer families (FLUX.1, SD3.5, FLUX.2) answer the same way.

Each of them is a diffusion transformer trained with flow matching, so one base says once:

- bf16 on CUDA, as Black Forest Labs and Stability AI publish the weights;
- the flow-matching schedulers;
- the components diffusers names ``transformer``, ``vae``, ``text_encoder``, ``text_encoder_2``,
  ... (and their tokenizers), the VAE decoding in the pipeline's dtype, as their stock
  pipelines do whatever ``force_upcast`` says;
- sizes in multiples of the VAE's down-sampling times the transformer's 2x2 patches (16);
- sigmas ``linspace(1, 1/steps)`` shifted by a family's ``mu`` (FLUX.1 and FLUX.2);
- attention: the transformers' own processors already call torch's SDPA, so only the VAE's
  mid-block attention is set, and xformers is refused.

What differs (conditioning, latent layout, ``mu``, guidance, variants) stays in each family.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from streamgen.engine.families.base import ModelFamily, PipelineParts
from streamgen.engine.families.rules import FamilyRules, Guidance
from streamgen.engine.schedulers import FLOW_SCHEDULERS
from streamgen.errors import ConfigError

__all__ = ["PATCH", "FlowTransformer", "image_shift", "set_shifted_sigmas"]

# Every served transformer cuts latents into 2x2 patches (FLUX packs them itself, SD3's
# transformer does it inside), so sizes are multiples of the VAE's factor times 2.
PATCH = 2


class FlowTransformer(ModelFamily):
    """A diffusion transformer trained with flow matching, ``text_encoders`` text encoders."""

    cuda_dtype = torch.bfloat16
    scheduler_table = FLOW_SCHEDULERS
    text_encoders: ClassVar[int]

    def parts(self, name: str, pipeline: Any, dtype: torch.dtype) -> PipelineParts:
        suffixes = ["", *(f"_{i}" for i in range(2, self.text_encoders + 1))]
        return PipelineParts(
            name=name,
            family=self,
            rules=self.rules(pipeline),
            pipeline=pipeline,
            denoiser=pipeline.transformer,
            vae=pipeline.vae,
            text_encoders=tuple(getattr(pipeline, f"text_encoder{s}") for s in suffixes),
            tokenizers=tuple(getattr(pipeline, f"tokenizer{s}") for s in suffixes),
            scheduler_config=dict(pipeline.scheduler.config),
            dtype=dtype,
            vae_dtype=dtype,
        )

    def patched_rules(
        self,
        pipeline: Any,
        *,
        variant: str,
        guidance: Guidance,
        negative_prompt: bool,
        img2img: bool,
        steps: tuple[int, int | None] = (1, None),
        max_patches: int | None = None,
    ) -> FamilyRules:
        """The rules of weights whose sizes are multiples of the VAE's down-sampling times the
        2x2 patches, at most ``max_patches`` patches a side where the transformer bounds it."""
        multiple = 2 ** (len(pipeline.vae.config.block_out_channels) - 1) * PATCH
        low, high = steps
        return FamilyRules(
            family=self.name,
            variant=variant,
            size_multiple=multiple,
            max_size=None if max_patches is None else multiple * max_patches,
            guidance=guidance,
            negative_prompt=negative_prompt,
            img2img=img2img,
            schedulers=tuple(self.scheduler_table),
            min_steps=low,
            max_steps=high,
        )

    def use_attention(self, parts: PipelineParts, kind: str) -> None:
        from diffusers.models import attention_processor

        if kind != "sdpa":
            raise ConfigError("engine.attention", f"{kind} is not wired for {self.name}; use sdpa")
        processor: Any = attention_processor.AttnProcessor2_0  # untyped in diffusers
        parts.vae.set_attn_processor(processor())


def set_shifted_sigmas(scheduler: Any, steps: int, device: torch.device, mu: float) -> None:
    """Timesteps on sigmas ``linspace(1, 1/steps)`` shifted by ``mu``, as FluxPipeline and
    Flux2KleinPipeline set them (a scheduler with ``use_flow_sigmas`` makes its own)."""
    if scheduler.config.get("use_flow_sigmas"):
        scheduler.set_timesteps(steps, device=device, mu=mu)
    else:
        sigmas = np.linspace(1.0, 1 / steps, steps)
        scheduler.set_timesteps(sigmas=sigmas, device=device, mu=mu)


def image_shift(tokens: int, base_len: int, max_len: int, base: float, top: float) -> float:
    """FLUX.1's ``mu``: linear in the number of image tokens (diffusers' calculate_shift)."""
    slope = (top - base) / (max_len - base_len)
    return tokens * slope + (base - slope * base_len)
