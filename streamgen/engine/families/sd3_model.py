"""Random-weight Stable Diffusion 3.5 pipelines: tiny ones for CPU tests, the published
architectures for benchmarks. Nothing is downloaded; tokenizers are built here (``tokenizers``).

The published configurations are those diffusers' ``scripts/convert_sd3_to_diffusers.py``
writes from Stability AI's checkpoints: ``SD3Transformer2DModel`` with patch 2, 16 latent
channels, attention heads of 64 and as many heads as layers (so caption projection 64 x layers),
joint attention dim 4096 (T5-XXL), pooled projection 2048 (CLIP-L's 768 + CLIP-G's 1280) and
RMS q/k norm; SD3.5 Large (and Large Turbo, the same architecture, distilled) has 38 layers and
positions up to 192 patches a side, SD3.5 Medium (MMDiT-X) 24 layers, 384, and a second
self-attention in layers 0-12 (``dual_attention_layers``). The VAE is SDXL's with 16 latent
channels, scaling 1.5305, shift 0.0609 and no quant convolutions; the encoders are CLIP ViT-L/14
and OpenCLIP ViT-bigG/14 text towers (with projection) and T5 v1.1 XXL's encoder; the scheduler
``FlowMatchEulerDiscreteScheduler`` with shift 3.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# What SD3 shares with FLUX.1 and SDXL, from its one definition: the CLIP-L, CLIP-G and T5-XXL
# encoders, and FLUX.1's 16-channel VAE architecture (only its latent statistics differ).
from streamgen.engine.families.component_configs import (
    CLIP_G,
    CLIP_L,
    T5_XXL,
    TINY_CLIP,
    TINY_T5,
    TINY_VAE16,
    VAE16,
)
from streamgen.engine.families.random_weights import (
    CLIP_SCRATCH,
    building,
    clip_special_ids,
    save_pipeline,
)
from streamgen.engine.families.tokenizers import clip_tokenizer, t5_tokenizer

__all__ = ["SD3_ARCHS", "build_sd3", "write_sd3"]

SEED = 0


@dataclass(frozen=True)
class SD3Arch:
    transformer: dict[str, Any]
    vae: dict[str, Any]
    clip_l: dict[str, Any]
    clip_g: dict[str, Any]
    t5: dict[str, Any]
    t5_tokens: int  # the T5 tokenizer's model_max_length


_LARGE = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 38,
    "attention_head_dim": 64,
    "num_attention_heads": 38,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 2432,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 192,
    "dual_attention_layers": (),
    "qk_norm": "rms_norm",
}
_MEDIUM = {
    **_LARGE,
    "num_layers": 24,
    "num_attention_heads": 24,
    "caption_projection_dim": 1536,
    "pos_embed_max_size": 384,
    "dual_attention_layers": tuple(range(13)),
}
_VAE = {**VAE16, "scaling_factor": 1.5305, "shift_factor": 0.0609}
_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}

# Tiny: the VAE keeps four blocks (8x down-sampling) and the transformer patch 2, so sizes follow
# the real rules (multiples of 16); positions up to 32 patches a side allow 512 pixels.
_TINY_TRANSFORMER = {
    **_LARGE,
    "sample_size": 8,
    "num_layers": 2,
    "attention_head_dim": 8,
    "num_attention_heads": 4,
    "joint_attention_dim": 64,
    "caption_projection_dim": 32,
    "pooled_projection_dim": 64,
    "pos_embed_max_size": 32,
}
_TINY_VAE = {**TINY_VAE16, "scaling_factor": 1.5305, "shift_factor": 0.0609}
# Both CLIPs' hidden states side by side must fit T5's width.
_TINY_T5 = {**TINY_T5, "d_model": 64, "d_kv": 16}


def _tiny(transformer: dict[str, Any]) -> SD3Arch:
    return SD3Arch(
        transformer=transformer,
        vae=_TINY_VAE,
        clip_l=TINY_CLIP,
        clip_g={**TINY_CLIP, "hidden_act": "gelu"},
        t5=_TINY_T5,
        t5_tokens=32,
    )


def _published(transformer: dict[str, Any]) -> SD3Arch:
    return SD3Arch(transformer, _VAE, CLIP_L, CLIP_G, T5_XXL, t5_tokens=256)


SD3_ARCHS: dict[str, SD3Arch] = {
    "tiny-sd3-large": _tiny(_TINY_TRANSFORMER),
    # MMDiT-X: the first of the two layers has the second self-attention, the last (a
    # context-pre-only block) has none, as in SD3.5 Medium.
    "tiny-sd3-medium": _tiny({**_TINY_TRANSFORMER, "dual_attention_layers": (0,)}),
    # Large Turbo is Large's architecture, distilled: the same weights layout and configs, so
    # it is one architecture here; the model mapping's ``#large-turbo`` preset tells them apart.
    "sd3.5-large": _published(_LARGE),
    "sd3.5-medium": _published(_MEDIUM),
}


def build_sd3(arch: str, work_dir: Path, *, device: str, dtype: torch.dtype) -> Any:
    """A ``StableDiffusion3Pipeline`` of random weights (seeded), built on ``device`` in
    ``dtype``."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    diffusers: Any = importlib.import_module("diffusers")  # untyped constructors

    spec = SD3_ARCHS[arch]
    clip_tok = clip_tokenizer(work_dir / CLIP_SCRATCH)
    special = clip_special_ids(clip_tok)
    components: dict[str, Any] = {
        "tokenizer": clip_tok,
        "tokenizer_2": clip_tok,
        "tokenizer_3": t5_tokenizer(spec.t5_tokens),
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler(**_SCHEDULER),
    }
    with building(device, dtype):
        torch.manual_seed(SEED)
        components["transformer"] = diffusers.SD3Transformer2DModel(**spec.transformer)
        torch.manual_seed(SEED + 1)
        components["vae"] = diffusers.AutoencoderKL(**spec.vae)
        for i, clip in enumerate((spec.clip_l, spec.clip_g)):
            torch.manual_seed(SEED + 2 + i)
            encoder = CLIPTextModelWithProjection(CLIPTextConfig(**clip, **special))
            components["text_encoder" if i == 0 else "text_encoder_2"] = encoder
        torch.manual_seed(SEED + 4)
        t5 = T5Config(**spec.t5, pad_token_id=0, eos_token_id=1)
        components["text_encoder_3"] = T5EncoderModel(t5)
    return diffusers.StableDiffusion3Pipeline(**components)


def write_sd3(arch: str, out: Path, *, device: str, dtype: torch.dtype) -> Path:
    """Write ``build_sd3(arch)`` to ``out`` with ``save_pretrained``."""
    return save_pipeline(build_sd3(arch, out, device=device, dtype=dtype), out, out / CLIP_SCRATCH)
