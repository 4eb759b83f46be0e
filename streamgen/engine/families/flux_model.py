"""Random-weight FLUX.1 pipelines: tiny ones for CPU tests, the published architecture for
benchmarks. Nothing is downloaded; tokenizers are built here (``tokenizers``).

The published configuration is that of ``black-forest-labs/FLUX.1-dev`` and
``FLUX.1-schnell`` as diffusers' ``scripts/convert_flux_to_diffusers.py`` writes it and the
model repositories' ``*/config.json`` hold: a transformer of 19 double-stream and 38
single-stream blocks, 24 heads of 128, joint attention dim 4096 (T5-XXL), pooled projection
768 (CLIP-L), rotary axes (16, 56, 56), guidance embedding for [dev] only; a 16-channel VAE
with scaling 0.3611 and shift 0.1159; T5 v1.1 XXL's encoder; CLIP ViT-L/14's text tower; and
FlowMatchEulerDiscreteScheduler with dynamic shifting for [dev], a fixed shift of 1 for
[schnell].
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamgen.engine.families.component_configs import (
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

__all__ = ["FLUX_ARCHS", "build_flux", "write_flux"]

SEED = 0


@dataclass(frozen=True)
class FluxArch:
    transformer: dict[str, Any]
    vae: dict[str, Any]
    clip: dict[str, Any]
    t5: dict[str, Any]
    t5_tokens: int  # the T5 tokenizer's model_max_length
    scheduler: dict[str, Any]


_VAE = {**VAE16, "scaling_factor": 0.3611, "shift_factor": 0.1159}
_TRANSFORMER = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "axes_dims_rope": (16, 56, 56),
}
_DEV_SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
_SCHNELL_SCHEDULER = {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False}

# Tiny: the VAE keeps four blocks (8x down-sampling), so sizes follow the real rules (16).
_TINY_VAE = {**TINY_VAE16, "scaling_factor": 0.3611, "shift_factor": 0.1159}
_TINY_TRANSFORMER = {
    **_TRANSFORMER,
    "num_layers": 1,
    "num_single_layers": 1,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 32,
    "pooled_projection_dim": 32,
    "axes_dims_rope": (4, 6, 6),
}


def _arch(tiny: bool, dev: bool) -> FluxArch:
    return FluxArch(
        transformer={**(_TINY_TRANSFORMER if tiny else _TRANSFORMER), "guidance_embeds": dev},
        vae=_TINY_VAE if tiny else _VAE,
        clip=TINY_CLIP if tiny else CLIP_L,
        t5=TINY_T5 if tiny else T5_XXL,
        t5_tokens=32 if tiny else 512,
        scheduler=_DEV_SCHEDULER if dev else _SCHNELL_SCHEDULER,
    )


FLUX_ARCHS: dict[str, FluxArch] = {
    "tiny-flux-dev": _arch(tiny=True, dev=True),
    "tiny-flux-schnell": _arch(tiny=True, dev=False),
    "flux-dev": _arch(tiny=False, dev=True),
    "flux-schnell": _arch(tiny=False, dev=False),
}


def build_flux(arch: str, work_dir: Path, *, device: str, dtype: torch.dtype) -> Any:
    """A ``FluxPipeline`` of random weights (seeded), built on ``device`` in ``dtype``."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    diffusers: Any = importlib.import_module("diffusers")  # untyped constructors

    spec = FLUX_ARCHS[arch]
    clip_tok = clip_tokenizer(work_dir / CLIP_SCRATCH)
    components: dict[str, Any] = {
        "tokenizer": clip_tok,
        "tokenizer_2": t5_tokenizer(spec.t5_tokens),
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler(**spec.scheduler),
    }
    with building(device, dtype):
        torch.manual_seed(SEED)
        components["transformer"] = diffusers.FluxTransformer2DModel(**spec.transformer)
        torch.manual_seed(SEED + 1)
        components["vae"] = diffusers.AutoencoderKL(**spec.vae)
        torch.manual_seed(SEED + 2)
        clip = CLIPTextConfig(**spec.clip, **clip_special_ids(clip_tok))
        components["text_encoder"] = CLIPTextModel(clip)
        torch.manual_seed(SEED + 3)
        t5 = T5Config(**spec.t5, pad_token_id=0, eos_token_id=1)
        components["text_encoder_2"] = T5EncoderModel(t5)
    return diffusers.FluxPipeline(**components)


def write_flux(arch: str, out: Path, *, device: str, dtype: torch.dtype) -> Path:
    """Write ``build_flux(arch)`` to ``out`` with ``save_pretrained``."""
    return save_pipeline(build_flux(arch, out, device=device, dtype=dtype), out, out / CLIP_SCRATCH)
