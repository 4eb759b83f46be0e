"""``flux``: FLUX.1 [dev] and [schnell], rectified-flow transformers with 2x2-packed latents.

What differs from the UNets, answered here or, where SD3.5 and FLUX.2 answer alike, in
``transformer``:

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

import torch

from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families.base import NoisePredictor, PipelineParts
from streamgen.engine.families.flow_matching import FlowMatchingImg2Img
from streamgen.engine.families.prompt_encoding import t5_encode
from streamgen.engine.families.rules import FamilyRules
from streamgen.engine.families.transformer import PATCH, image_shift, set_shifted_sigmas

__all__ = ["FLUX", "Flux", "pack", "unpack"]

# T5 tokens per prompt, by variant (the model cards' max_sequence_length).
_T5_TOKENS = {"dev": 512, "schnell": 256}
# Step ranges, by variant: [dev] is trained for 28-50 steps; [schnell] is timestep-distilled
# for 1-4 (more steps do not improve it, they only cost).
_STEPS = {"dev": (28, 50), "schnell": (1, 4)}


class Flux(FlowMatchingImg2Img):
    name = "flux"
    pipeline_classes = ("FluxPipeline",)
    text_encoders = 2  # CLIP-L, T5-XXL
    fp8_blocks = ("transformer_blocks.", "single_transformer_blocks.")

    def rules(self, pipeline: Any) -> FamilyRules:
        variant = _variant(pipeline.transformer)
        return self.patched_rules(
            pipeline,
            variant=variant,
            guidance="embedded" if variant == "dev" else "none",
            negative_prompt=False,
            img2img=True,
            steps=_STEPS[variant],
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
        embeds = t5_encode(t5_tokenizer, t5, texts, device, t5_tokens(parts))
        return Conditioning({"embeds": embeds, "pooled": pooled.to(clip.dtype)}, copies=1)

    def latent_shape(self, parts: PipelineParts, width: int, height: int) -> tuple[int, int, int]:
        factor = parts.vae_scale_factor * 2
        channels = int(parts.denoiser.config.in_channels) // 4
        return (channels, 2 * (height // factor), 2 * (width // factor))

    def set_timesteps(
        self, scheduler: Any, steps: int, latent_shape: Sequence[int], device: torch.device
    ) -> None:
        config = scheduler.config
        tokens = (latent_shape[1] // PATCH) * (latent_shape[2] // PATCH)
        mu = image_shift(
            tokens,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        set_shifted_sigmas(scheduler, steps, device, mu)

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


def t5_tokens(parts: PipelineParts) -> int:
    """T5 tokens per prompt: the variant's, capped by what the tokenizer holds."""
    return min(_T5_TOKENS[parts.rules.variant], int(parts.tokenizers[1].model_max_length))


def _variant(transformer: Any) -> str:
    return "dev" if transformer.config.guidance_embeds else "schnell"


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
