"""``sd15`` and ``sdxl``: the UNet families, with classifier-free guidance on a DDPM schedule.

SD 1.x/2.x condition on one CLIP encoder's last hidden state; SDXL on the penultimate layers of
two, plus the second's pooled projection and the (original size, crop, target size) ids. Both
run in fp16 on CUDA, image sizes are multiples of 8 (the VAE's down-sampling), and every
DDPM scheduler of ``schedulers.DISCRETE_SCHEDULERS`` applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families.base import ModelFamily, NoisePredictor, PipelineParts
from streamgen.engine.families.prompt_encoding import clip_encode
from streamgen.engine.families.rules import FamilyRules
from streamgen.engine.families.sdxl_presets import PRESETS, preset_rules
from streamgen.engine.schedulers import DISCRETE_SCHEDULERS, make_scheduler

__all__ = ["SD15", "SDXL", "StableDiffusion", "StableDiffusionXL"]


class StableDiffusion(ModelFamily):
    """SD 1.x and 2.x: one CLIP text encoder, CFG over ``[negatives, positives]``."""

    name = "sd15"
    pipeline_classes = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
    cuda_dtype = torch.float16
    scheduler_table = DISCRETE_SCHEDULERS

    def parts(self, name: str, pipeline: Any, dtype: torch.dtype) -> PipelineParts:
        encoders = tuple(
            e for e in (pipeline.text_encoder, getattr(pipeline, "text_encoder_2", None)) if e
        )
        tokenizers = tuple(
            t for t in (pipeline.tokenizer, getattr(pipeline, "tokenizer_2", None)) if t
        )
        return PipelineParts(
            name=name,
            family=self,
            rules=self.rules(pipeline),
            pipeline=pipeline,
            denoiser=pipeline.unet,
            vae=pipeline.vae,
            text_encoders=encoders,
            tokenizers=tokenizers,
            scheduler_config=dict(pipeline.scheduler.config),
            dtype=dtype,
            vae_dtype=self._vae_dtype(pipeline, dtype),
        )

    def _vae_dtype(self, pipeline: Any, dtype: torch.dtype) -> torch.dtype:
        # diffusers' SD 1.x pipeline never upcasts, although AutoencoderKL's force_upcast
        # defaults to true for every checkpoint.
        return dtype

    def rules(self, pipeline: Any) -> FamilyRules:
        return FamilyRules(
            family=self.name,
            variant=self.name,
            size_multiple=2 ** (len(pipeline.vae.config.block_out_channels) - 1),
            guidance="cfg",
            negative_prompt=True,
            img2img=True,
            schedulers=tuple(self.scheduler_table),
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
        texts = [*negatives, *prompts]
        embeds = clip_encode(parts.tokenizers[0], parts.text_encoders[0], texts, device)[0]
        return Conditioning({"embeds": embeds.to(parts.dtype)})

    def noise_predictor(self, denoiser: Any) -> NoisePredictor:
        def predict(
            latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, guidance: torch.Tensor
        ) -> torch.Tensor:
            # One copy of the conditioning: a guidance-free preset, a single pass.
            if cond.copies == 1:
                return unet_step(denoiser, latents, t, cond)
            return guided_unet_step(denoiser, latents, t, cond, guidance)

        return predict


class StableDiffusionXL(StableDiffusion):
    """SDXL: two CLIP encoders (penultimate layers), pooled embedding and size ids."""

    name = "sdxl"
    pipeline_classes = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline")
    presets = tuple(PRESETS)  # few-step distillations (sdxl_presets)

    def preset_rules(self, rules: FamilyRules, preset: str, *, setting: str) -> FamilyRules:
        return preset_rules(super().preset_rules(rules, preset, setting=setting), preset)

    def make_scheduler(self, name: str, parts: PipelineParts) -> Any:
        preset = PRESETS.get(parts.rules.variant)
        if preset is None:
            return super().make_scheduler(name, parts)
        return make_scheduler(name, parts.scheduler_config, preset.table)

    def _vae_dtype(self, pipeline: Any, dtype: torch.dtype) -> torch.dtype:
        # The VAE of real SDXL checkpoints overflows in fp16, so it runs in float32.
        if dtype == torch.float16 and getattr(pipeline.vae.config, "force_upcast", False):
            pipeline.vae.to(torch.float32)
            return torch.float32
        return dtype

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
        # Without CFG (a few-step preset) the pipeline encodes no negative half.
        cfg = parts.rules.guidance == "cfg"
        texts = [*negatives, *prompts] if cfg else list(prompts)
        hidden_states = []
        pooled = torch.empty(0)
        for tokenizer, encoder in zip(parts.tokenizers, parts.text_encoders, strict=True):
            # SDXL conditions on the penultimate layer of both encoders and the pooled,
            # projected output of the second.
            pooled, layers = clip_encode(tokenizer, encoder, texts, device, all_layers=True)
            hidden_states.append(layers[-2])
        embeds = torch.cat(hidden_states, dim=-1)
        # SDXL checkpoints are trained with zeros, not the encoding of "", for 'no negative'.
        if cfg and getattr(parts.pipeline.config, "force_zeros_for_empty_prompt", True):
            empty = torch.tensor([not n for n in negatives] + [False] * len(prompts), device=device)
            embeds = embeds.masked_fill(empty[:, None, None], 0.0)
            pooled = pooled.masked_fill(empty[:, None], 0.0)
        size = [height, width, 0, 0, height, width]
        time_ids = torch.tensor([size] * len(texts), device=device, dtype=parts.dtype)
        return Conditioning(
            {
                "embeds": embeds.to(parts.dtype),
                "pooled": pooled.to(parts.dtype),
                "time_ids": time_ids,
            },
            copies=2 if cfg else 1,
        )


def unet_step(
    unet: Any, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning
) -> torch.Tensor:
    """One UNet pass over ``latents`` (repeated for each copy of the conditioning)."""
    pooled, time_ids = cond.get("pooled"), cond.get("time_ids")
    added = None
    if pooled is not None and time_ids is not None:  # SDXL's added conditioning
        added = {"text_embeds": pooled, "time_ids": time_ids}
    noise: torch.Tensor = unet(
        torch.cat([latents] * cond.copies),
        t,
        encoder_hidden_states=cond["embeds"],
        added_cond_kwargs=added,
        return_dict=False,
    )[0]
    return noise


def guided_unet_step(
    unet: Any, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, guidance: torch.Tensor
) -> torch.Tensor:
    # The negative and positive halves share one pass; guidance is per row.
    noise = unet_step(unet, latents, t, cond)
    negative, positive = noise.chunk(2)
    scale = guidance.to(noise.dtype).view(-1, 1, 1, 1)
    result: torch.Tensor = negative + scale * (positive - negative)
    return result


SD15 = StableDiffusion()
SDXL = StableDiffusionXL()
