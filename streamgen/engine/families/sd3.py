"""``sd3``: Stable Diffusion 3.5 Large, Medium and Large Turbo, MMDiT transformers trained with
flow matching.

What differs from the other families, each answered here and nowhere else:

- bf16 on CUDA, as Stability AI publish the weights;
- conditioning from three text encoders: CLIP-L's and CLIP-G's penultimate hidden states side by
  side, zero-padded to T5-XXL's width, then T5's last hidden state (256 tokens, the pipeline's
  default; a tokenizer that holds fewer caps it) in one sequence; the two CLIPs' pooled
  projections concatenated as the pooled embedding. The negative half encodes the negative
  prompt, ``""`` when empty (no zeros, unlike SDXL);
- guidance: classifier-free, over ``[negatives, positives]`` with a per-row scale; a row whose
  scale is at most 1 gets the positive prediction alone, as ``StableDiffusion3Pipeline`` does
  for a whole call. Large Turbo is distilled to run without it: one row per image, no guidance
  input, so a negative prompt or a guidance scale would change nothing and is refused;
- latents: 16 channels at 1/8 of the size; the transformer cuts them into 2x2 patches itself,
  so sizes are multiples of 16, and its table of patch positions bounds them (192 a side for
  Large: 3072 pixels);
- timesteps: ``FlowMatchEulerDiscreteScheduler`` with the checkpoint's fixed shift (3.0), and
  a resolution-dependent ``mu`` only where the config turns dynamic shifting on;
- decoding: the VAE's ``shift_factor`` and ``scaling_factor`` (generic, ``decode``);
- img2img: flow matching's (``flow_matching``), as ``StableDiffusion3Img2ImgPipeline``; not on
  Large Turbo, whose model card offers text-to-image only (4 ADD-distilled steps).
- ``engine.fuse_qkv``: streamgen's own fused joint attention (``joint_attention``); diffusers'
  drops SD3.5's q/k norms.

Variants: the weights say SD3.5 Large, SD3.5 Medium (MMDiT-X's dual-attention layers) or SD3
Medium (no q/k norm, served the same way). Large Turbo has
Large's configs, so the model mapping names it: ``--model NAME=PATH#large-turbo``.

Every step mirrors ``diffusers.StableDiffusion3Pipeline.__call__`` (its img2img pipeline's for
img2img) operation for operation, so a seed gives stock diffusers' image
(tests/unit/engine/test_sd3.py, test_flow_img2img.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families.base import NoisePredictor, PipelineParts
from streamgen.engine.families.flow_matching import FlowMatchingImg2Img
from streamgen.engine.families.fused_projections import drop_unfused_projections
from streamgen.engine.families.joint_attention import fuse_joint_attention
from streamgen.engine.families.prompt_encoding import clip_encode, t5_encode
from streamgen.engine.families.rules import FamilyRules
from streamgen.engine.families.transformer import PATCH, image_shift
from streamgen.errors import ConfigError

__all__ = ["SD3", "StableDiffusion3"]

# T5 tokens per prompt: StableDiffusion3Pipeline's default max_sequence_length.
T5_TOKENS = 256
# Large Turbo is timestep-distilled for 4 steps; fewer run, more only cost.
TURBO_STEPS = (1, 4)


class StableDiffusion3(FlowMatchingImg2Img):
    name = "sd3"
    pipeline_classes = ("StableDiffusion3Pipeline",)
    text_encoders = 3  # CLIP-L, CLIP-G, T5-XXL
    fp8_blocks = ("transformer_blocks.",)
    presets = ("large-turbo",)

    def parts(self, name: str, pipeline: Any, dtype: torch.dtype) -> PipelineParts:
        patch = pipeline.transformer.config.patch_size
        if patch != PATCH:
            raise ConfigError(
                f"engine.models[{name}]", f"an SD3 transformer of patch {patch}, not {PATCH}"
            )
        if pipeline.text_encoder_3 is None:
            raise ConfigError(
                f"engine.models[{name}]", "an SD3 pipeline without its T5 encoder is not served"
            )
        return super().parts(name, pipeline, dtype)

    def rules(self, pipeline: Any) -> FamilyRules:
        transformer = pipeline.transformer.config
        return self.patched_rules(
            pipeline,
            variant=_variant(transformer),
            guidance="cfg",
            negative_prompt=True,
            img2img=True,
            max_patches=int(transformer.pos_embed_max_size),
        )

    def preset_rules(self, rules: FamilyRules, preset: str, *, setting: str) -> FamilyRules:
        super().preset_rules(rules, preset, setting=setting)  # refuses unknown presets
        if rules.variant != "large":
            raise ConfigError(
                setting,
                f"#{preset} is SD3.5 Large distilled; these weights are SD3.5 {rules.variant}",
            )
        low, high = TURBO_STEPS
        return dataclasses.replace(
            rules,
            variant=preset,
            guidance="none",
            negative_prompt=False,
            # Its model card offers text-to-image only.
            img2img=False,
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
        guided = parts.rules.guidance == "cfg"
        texts = [*negatives, *prompts] if guided else list(prompts)
        clip_l, clip_g, t5 = parts.text_encoders
        tokenizer_l, tokenizer_g, tokenizer_t5 = parts.tokenizers
        pooled_l, layers_l = clip_encode(tokenizer_l, clip_l, texts, device, all_layers=True)
        pooled_g, layers_g = clip_encode(tokenizer_g, clip_g, texts, device, all_layers=True)
        clip_states = torch.cat([layers_l[-2], layers_g[-2]], dim=-1).to(clip_l.dtype)
        t5_states = t5_encode(tokenizer_t5, t5, texts, device, t5_tokens(parts))
        clip_states = torch.nn.functional.pad(
            clip_states, (0, t5_states.shape[-1] - clip_states.shape[-1])
        )
        return Conditioning(
            {
                "embeds": torch.cat([clip_states, t5_states], dim=-2),
                "pooled": torch.cat([pooled_l, pooled_g], dim=-1),
            },
            copies=2 if guided else 1,
        )

    def set_timesteps(
        self, scheduler: Any, steps: int, latent_shape: Sequence[int], device: torch.device
    ) -> None:
        config = scheduler.config
        if not config.get("use_dynamic_shifting"):
            scheduler.set_timesteps(steps, device=device)
            return
        tokens = (latent_shape[1] // PATCH) * (latent_shape[2] // PATCH)
        mu = image_shift(
            tokens,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.16),  # StableDiffusion3Pipeline's fallback, not FLUX's
        )
        scheduler.set_timesteps(steps, device=device, mu=mu)

    def noise_predictor(self, denoiser: Any) -> NoisePredictor:
        def predict(
            latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, guidance: torch.Tensor
        ) -> torch.Tensor:
            # Two copies of the conditioning: CFG's negative and positive halves in one pass.
            guided = cond.copies == 2
            rows = torch.cat([latents] * 2) if guided else latents
            output: torch.Tensor = denoiser(
                hidden_states=rows,
                timestep=t.expand(rows.shape[0]),
                encoder_hidden_states=cond["embeds"],
                pooled_projections=cond["pooled"],
                return_dict=False,
            )[0]
            if not guided:
                return output
            negative, positive = output.chunk(2)
            scale = guidance.to(output.dtype).view(-1, 1, 1, 1)
            mixed = negative + scale * (positive - negative)
            return torch.where(guidance.view(-1, 1, 1, 1) > 1, mixed, positive)

        return predict

    def fuse_qkv(self, parts: PipelineParts) -> None:
        # Not diffusers' fused processor: it drops SD3.5's q/k norms and cannot run Medium's
        # dual attention (joint_attention.py says how each showed).
        fuse_joint_attention(parts.denoiser)
        parts.vae.fuse_qkv_projections()
        for module in (parts.denoiser, parts.vae):
            drop_unfused_projections(module)


def _variant(transformer: Any) -> str:
    # MMDiT-X (SD3.5 Medium) adds a second self-attention to its first layers; SD3.5 Large has
    # q/k RMS norm and no second attention; SD3 Medium (3.0, the only SD3 release) has neither.
    if transformer.dual_attention_layers:
        return "medium"
    return "large" if transformer.qk_norm else "3-medium"


def t5_tokens(parts: PipelineParts) -> int:
    """T5 tokens per prompt: the pipeline's default, capped by what the tokenizer holds."""
    return min(T5_TOKENS, int(parts.tokenizers[2].model_max_length))


SD3 = StableDiffusion3()
