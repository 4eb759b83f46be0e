"""``flux``: FLUX.1 [dev] and [schnell], rectified-flow transformers with 2x2-packed latents.

What differs from the UNets, each answered here and nowhere else:

- bf16 on CUDA, as Black Forest Labs publish the weights;
- conditioning: CLIP-L's pooled output and T5-XXL's last hidden state (512 tokens for [dev],
  256 for [schnell], as their model cards use; a tokenizer that holds fewer caps it), one row
  per image: no negative half, because there is no classifier-free guidance;
- guidance: [dev] is guidance-distilled and takes ``guidance_scale`` as an embedding input
  (a per-row tensor here, so one batch mixes scales); [schnell] has no guidance input;
- latents: 16 channels; the transformer sees 2x2 patches packed into tokens, so image sizes are
  multiples of 16. The engine keeps latents in the VAE's layout and the noise predictor packs
  and unpacks around the transformer: the flow-matching Euler step is element-wise, so it gives
  the same numbers on either layout, and the loop, graphs and AOT stay layout-agnostic;
- timesteps: ``FlowMatchEulerDiscreteScheduler`` on sigmas ``linspace(1, 1/steps)``, shifted by
  ``mu``, which grows with the number of image tokens (the checkpoint's
  ``use_dynamic_shifting``; [schnell]'s config turns it off);
- decoding: the VAE's ``shift_factor`` and ``scaling_factor`` (generic, ``decode``);
- img2img, both variants: flow matching's (``flow_matching``), as ``FluxImg2ImgPipeline``.

Every step mirrors ``diffusers.FluxPipeline.__call__`` (``FluxImg2ImgPipeline.__call__`` for
img2img) operation for operation, so a seed gives stock diffusers' image
(tests/unit/engine/test_flux.py, test_flow_img2img.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families.base import NoisePredictor, PipelineParts
from streamgen.engine.families.flow_matching import FlowMatchingImg2Img
from streamgen.engine.families.rules import FamilyRules
from streamgen.engine.schedulers import FLOW_SCHEDULERS
from streamgen.errors import ConfigError

__all__ = ["FLUX", "Flux", "pack", "unpack"]

# T5 tokens per prompt, by variant (the model cards' max_sequence_length).
_T5_TOKENS = {"dev": 512, "schnell": 256}
# Step ranges, by variant: [dev] is trained for 28-50 steps; [schnell] is timestep-distilled
# for 1-4 (more steps do not improve it, they only cost).
_STEPS = {"dev": (28, 50), "schnell": (1, 4)}


class Flux(FlowMatchingImg2Img):
    name = "flux"
    pipeline_classes = ("FluxPipeline",)
    cuda_dtype = torch.bfloat16
    scheduler_table = FLOW_SCHEDULERS
    fp8_blocks = ("transformer_blocks.", "single_transformer_blocks.")

    def parts(self, name: str, pipeline: Any, dtype: torch.dtype) -> PipelineParts:
        return PipelineParts(
            name=name,
            family=self,
            rules=self.rules(pipeline),
            pipeline=pipeline,
            denoiser=pipeline.transformer,
            vae=pipeline.vae,
            text_encoders=(pipeline.text_encoder, pipeline.text_encoder_2),
            tokenizers=(pipeline.tokenizer, pipeline.tokenizer_2),
            scheduler_config=dict(pipeline.scheduler.config),
            dtype=dtype,
            vae_dtype=dtype,
        )

    def rules(self, pipeline: Any) -> FamilyRules:
        variant = _variant(pipeline.transformer)
        low, high = _STEPS[variant]
        return FamilyRules(
            family=self.name,
            variant=variant,
            # The VAE's down-sampling, then 2x2 patches.
            size_multiple=2 ** (len(pipeline.vae.config.block_out_channels) - 1) * 2,
            guidance="embedded" if variant == "dev" else "none",
            negative_prompt=False,
            img2img=True,
            schedulers=tuple(self.scheduler_table),
            min_steps=low,
            max_steps=high,
        )

    @torch.no_grad()
    def encode(
        self,
        parts: PipelineParts,
        prompts: Sequence[str],
        negatives: Sequence[str],
        *,
        width: int,
        height: int,
        device: torch.device,
    ) -> Conditioning:
        clip_tokenizer, t5_tokenizer = parts.tokenizers
        clip, t5 = parts.text_encoders
        texts = list(prompts)
        clip_ids = clip_tokenizer(
            texts,
            padding="max_length",
            max_length=clip_tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        pooled = clip(clip_ids.to(device), output_hidden_states=False).pooler_output
        t5_ids = t5_tokenizer(
            texts,
            padding="max_length",
            max_length=t5_tokens(parts),
            truncation=True,
            return_tensors="pt",
        ).input_ids
        embeds = t5(t5_ids.to(device), output_hidden_states=False)[0]
        return Conditioning(
            {"embeds": embeds.to(t5.dtype), "pooled": pooled.to(clip.dtype)}, copies=1
        )

    def latent_shape(self, parts: PipelineParts, width: int, height: int) -> tuple[int, int, int]:
        factor = parts.vae_scale_factor * 2
        channels = int(parts.denoiser.config.in_channels) // 4
        return (channels, 2 * (height // factor), 2 * (width // factor))

    def set_timesteps(
        self, scheduler: Any, steps: int, latent_shape: Sequence[int], device: torch.device
    ) -> None:
        config = scheduler.config
        sigmas = None if config.get("use_flow_sigmas") else np.linspace(1.0, 1 / steps, steps)
        tokens = (latent_shape[1] // 2) * (latent_shape[2] // 2)
        mu = image_shift(
            tokens,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        if sigmas is None:
            scheduler.set_timesteps(steps, device=device, mu=mu)
        else:
            scheduler.set_timesteps(sigmas=sigmas, device=device, mu=mu)

    def noise_predictor(self, denoiser: Any) -> NoisePredictor:
        embeds_guidance = bool(denoiser.config.guidance_embeds)

        def predict(
            latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, guidance: torch.Tensor
        ) -> torch.Tensor:
            rows, _, height, width = latents.shape
            embeds = cond["embeds"]
            text_ids = torch.zeros(embeds.shape[1], 3, device=latents.device, dtype=latents.dtype)
            timestep = t.expand(rows).to(latents.dtype)
            velocity = denoiser(
                hidden_states=pack(latents),
                timestep=timestep / 1000,
                guidance=guidance if embeds_guidance else None,
                pooled_projections=cond["pooled"],
                encoder_hidden_states=embeds,
                txt_ids=text_ids,
                img_ids=image_ids(height // 2, width // 2, latents.device, latents.dtype),
                return_dict=False,
            )[0]
            return unpack(velocity, height, width)

        return predict

    def use_attention(self, parts: PipelineParts, kind: str) -> None:
        from diffusers.models import attention_processor

        sdpa: Any = attention_processor.AttnProcessor2_0  # untyped in diffusers

        if kind != "sdpa":
            raise ConfigError("engine.attention", f"{kind} is not wired for {self.name}; use sdpa")
        # The transformer's own processors already call torch's SDPA; the VAE's mid-block
        # attention is a classic one.
        parts.vae.set_attn_processor(sdpa())


def t5_tokens(parts: PipelineParts) -> int:
    """T5 tokens per prompt: the variant's, capped by what the tokenizer holds."""
    return min(_T5_TOKENS[parts.rules.variant], int(parts.tokenizers[1].model_max_length))


def _variant(transformer: Any) -> str:
    return "dev" if transformer.config.guidance_embeds else "schnell"


def image_shift(tokens: int, base_len: int, max_len: int, base: float, top: float) -> float:
    """FLUX.1's ``mu``: linear in the number of image tokens (diffusers' calculate_shift)."""
    slope = (top - base) / (max_len - base_len)
    return tokens * slope + (base - slope * base_len)


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, 4C): one token per 2x2 patch (FluxPipeline._pack_latents)."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`pack`, for latents of ``height`` x ``width``."""
    b, _, channels = tokens.shape
    patches = tokens.view(b, height // 2, width // 2, channels // 4, 2, 2)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(b, channels // 4, height, width)


def image_ids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Each image token's (0, row, column) for the rotary embedding.

    Made on the device, not copied from the host: a CUDA graph capture forbids host copies, and
    an AOT package would otherwise hold it as a constant apart from the module's weights.
    """
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, device=device, dtype=torch.float32)[None, :].expand(height, width)
    ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1)
    return ids.reshape(height * width, 3).to(dtype)


FLUX = Flux()
