"""``flux2``: FLUX.2 [klein] 4B and 9B, as diffusers' ``Flux2KleinPipeline`` serves them.

What differs from FLUX.1, each answered here (what it shares with the other transformers is
in ``transformer``):

- one text encoder, an LLM: Qwen3 (4B for [klein] 4B, 8B for 9B) reads the prompt wrapped in
  its chat template (thinking off), and the conditioning is its hidden states 9, 18 and 27
  stacked per token (3 x 2560 or 3 x 4096 wide), 512 tokens, padding included; no pooled
  embedding;
- latents: the VAE has 32 channels; the transformer sees 2x2 patches (128 channels), and the
  starting noise is drawn in that patch layout, normalised by the VAE's batch-norm statistics.
  The engine therefore keeps latents as (128, H/16, W/16) patch grids; the noise predictor only
  flattens them into tokens, and ``vae_input`` undoes the normalisation and the patching before
  decoding. Image sizes are multiples of 16;
- positions: 4-axis rotary ids (time, row, column, layer) for image and text tokens;
- timesteps: ``FlowMatchEulerDiscreteScheduler`` on sigmas ``linspace(1, 1/steps)``, shifted by
  an empirical ``mu`` that depends on both the number of image tokens and of steps
  (diffusers' ``compute_empirical_mu``);
- guidance: the distilled [klein] is timestep- and guidance-distilled, 4 steps and no guidance
  input (Black Forest Labs fix both for it); a negative prompt has nothing to act on.
  The undistilled [klein] base (CFG, 50 steps) is refused at load (see ``rules``);
- bf16 on CUDA, as Black Forest Labs publish the weights.

Every step mirrors ``diffusers.Flux2KleinPipeline.__call__`` operation for operation, so a seed
gives stock diffusers' image (tests/unit/engine/test_flux2.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families.base import NoisePredictor, PipelineParts
from streamgen.engine.families.rules import FamilyRules
from streamgen.engine.families.transformer import FlowTransformer, set_shifted_sigmas
from streamgen.errors import ConfigError

__all__ = ["FLUX2", "Flux2", "unpatchify"]

# Prompt tokens, chat template included (the pipeline's max_sequence_length); a tokenizer that
# holds fewer caps it.
_TOKENS = 512
# The text encoder's hidden states the transformer reads (the pipeline's text_encoder_out_layers).
_TEXT_LAYERS = (9, 18, 27)
# [klein] is step-distilled for exactly 4 steps (Black Forest Labs' reference code fixes
# num_steps for it: other counts query the model at noise levels it was not trained on).
_KLEIN_STEPS = 4


class Flux2(FlowTransformer):
    name = "flux2"
    pipeline_classes = ("Flux2KleinPipeline",)
    text_encoders = 1  # Qwen3
    # The shared modulation layers sit outside the blocks: one row per image, kept in bf16.
    fp8_blocks = ("transformer_blocks.", "single_transformer_blocks.")

    def rules(self, pipeline: Any) -> FamilyRules:
        if not pipeline.config.get("is_distilled", False):
            # The base model needs CFG with two transformer passes and 50 steps; serving it
            # is another variant of this module, not written yet.
            raise ConfigError(
                "engine.models",
                "FLUX.2 [klein] base (is_distilled=false) is not served; use the distilled "
                "FLUX.2 [klein] 4B or 9B",
            )
        return self.patched_rules(
            pipeline,
            variant="klein",
            guidance="none",
            negative_prompt=False,
            img2img=False,
            steps=(_KLEIN_STEPS, _KLEIN_STEPS),
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
        (tokenizer,), (encoder,) = parts.tokenizers, parts.text_encoders
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                tokenize=False,
                add_generation_prompt=True,
                enable_thinking=False,
            )
            for prompt in prompts
        ]
        tokens = tokenizer(
            texts,
            return_tensors="pt",
            padding="max_length",
            truncation=True,
            max_length=min(_TOKENS, int(tokenizer.model_max_length)),
        )
        output = encoder(
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
            output_hidden_states=True,
            use_cache=False,
        )
        # (B, layers, L, D) -> (B, L, layers * D): each token's three depths side by side.
        layers = torch.stack([output.hidden_states[k] for k in _TEXT_LAYERS], dim=1)
        rows, depth, length, width_ = layers.shape
        embeds = layers.permute(0, 2, 1, 3).reshape(rows, length, depth * width_)
        return Conditioning({"embeds": embeds.to(encoder.dtype)}, copies=1)

    def latent_shape(self, parts: PipelineParts, width: int, height: int) -> tuple[int, int, int]:
        factor = parts.vae_scale_factor * 2
        return (int(parts.denoiser.config.in_channels), height // factor, width // factor)

    def set_timesteps(
        self, scheduler: Any, steps: int, latent_shape: Sequence[int], device: torch.device
    ) -> None:
        from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

        mu = compute_empirical_mu(image_seq_len=latent_shape[1] * latent_shape[2], num_steps=steps)
        set_shifted_sigmas(scheduler, steps, device, mu)

    def noise_predictor(self, denoiser: Any) -> NoisePredictor:
        def predict(
            latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, guidance: torch.Tensor
        ) -> torch.Tensor:
            rows, channels, height, width = latents.shape
            embeds = cond["embeds"]
            # One token per patch, in row-major order (Flux2KleinPipeline._pack_latents).
            tokens = latents.reshape(rows, channels, height * width).permute(0, 2, 1)
            velocity = denoiser(
                hidden_states=tokens,
                timestep=t.expand(rows).to(latents.dtype) / 1000,
                guidance=None,
                encoder_hidden_states=embeds,
                txt_ids=_positions(1, embeds.shape[1], latents.device, text=True),
                img_ids=_positions(height, width, latents.device, text=False),
                return_dict=False,
            )[0]
            grid: torch.Tensor = velocity.permute(0, 2, 1).reshape(rows, channels, height, width)
            return grid

        return predict

    def vae_input(self, parts: PipelineParts, latents: torch.Tensor) -> torch.Tensor:
        """Undo the batch-norm normalisation (on the 2x2 patch channels), then the patching."""
        bn = parts.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + parts.vae.config.batch_norm_eps)
        patches: torch.Tensor = latents * std.to(latents.device, latents.dtype) + mean
        return unpatchify(patches).to(parts.vae_dtype)


def unpatchify(patches: torch.Tensor) -> torch.Tensor:
    """(B, 4C, h, w) 2x2 patch channels -> (B, C, 2h, 2w): the pipeline's _unpatchify_latents."""
    b, channels, h, w = patches.shape
    grid = patches.reshape(b, channels // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return grid.reshape(b, channels // 4, h * 2, w * 2)


def _positions(height: int, width: int, device: torch.device, *, text: bool) -> torch.Tensor:
    """Each token's (time, row, column, layer) for the 4-axis rotary embedding: image tokens
    (0, row, column, 0); text tokens (0, 0, 0, index). Made on the device, not copied from the
    host: a CUDA graph capture forbids host copies and an AOT package would hold a constant."""
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, device=device, dtype=torch.float32)[None, :].expand(height, width)
    zeros = torch.zeros_like(rows)
    axes = [zeros, zeros, zeros, cols] if text else [zeros, rows, cols, zeros]
    return torch.stack(axes, dim=-1).reshape(height * width, 4)


FLUX2 = Flux2()
