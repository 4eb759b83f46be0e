"""Random-weight SD 1.5 and SDXL pipelines, with no download of any kind.

``tiny`` (sd15) and ``tiny-sdxl`` are for tests and the CPU demo; ``sd15`` and ``sdxl`` have
the real architectures (and so the real FLOPs) for benchmarks. Weights come from a fixed seed:
the same command on the same device writes the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from streamgen.engine.families.component_configs import CLIP_G, CLIP_L, TINY_VAE, VAE
from streamgen.engine.families.random_weights import CLIP_SCRATCH, clip_special_ids, save_pipeline
from streamgen.engine.families.tokenizers import clip_tokenizer

__all__ = ["SD_ARCHS", "write_stable_diffusion"]

SEED = 0


@dataclass(frozen=True)
class _Arch:
    unet: dict[str, Any]
    vae: dict[str, Any]
    text_encoders: tuple[dict[str, Any], ...]
    scheduler: str
    scheduler_config: dict[str, Any] = field(default_factory=dict)


# Noise schedule shared by SD 1.x and SDXL checkpoints.
_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}

_TINY_TEXT = {
    "vocab_size": 1000,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 32,
}
_TINY_UNET = {
    "sample_size": 8,
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}

SD_ARCHS: dict[str, _Arch] = {
    "tiny": _Arch(
        unet=_TINY_UNET,
        vae=TINY_VAE,
        text_encoders=(_TINY_TEXT,),
        scheduler="PNDMScheduler",
        scheduler_config={"skip_prk_steps": True},
    ),
    # Same two-encoder, added-time-ids code path as SDXL, small enough for CPU tests.
    "tiny-sdxl": _Arch(
        unet={
            **_TINY_UNET,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "cross_attention_dim": 64,
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 32 + 6 * 8,
        },
        vae={**TINY_VAE, "force_upcast": False},
        text_encoders=(_TINY_TEXT, {**_TINY_TEXT, "hidden_act": "gelu"}),
        scheduler="EulerDiscreteScheduler",
    ),
    "sd15": _Arch(
        unet={
            "sample_size": 64,
            "block_out_channels": (320, 640, 1280, 1280),
            "layers_per_block": 2,
            "cross_attention_dim": 768,
            "attention_head_dim": 8,
        },
        vae={**VAE, "sample_size": 512, "scaling_factor": 0.18215},
        text_encoders=(CLIP_L,),
        scheduler="PNDMScheduler",
        scheduler_config={"skip_prk_steps": True},
    ),
    "sdxl": _Arch(
        unet={
            "sample_size": 128,
            "block_out_channels": (320, 640, 1280),
            "layers_per_block": 2,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            "transformer_layers_per_block": (1, 2, 10),
            "attention_head_dim": (5, 10, 20),
            "cross_attention_dim": 2048,
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816,
        },
        vae={**VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True},
        text_encoders=(CLIP_L, CLIP_G),
        scheduler="EulerDiscreteScheduler",
    ),
}


def write_stable_diffusion(
    arch: str, out: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> Path:
    """Write a random ``arch`` pipeline to ``out`` with ``save_pretrained``; return the path."""
    import diffusers

    spec = SD_ARCHS[arch]
    tokenizer = clip_tokenizer(out / CLIP_SCRATCH)
    components = _build_components(spec, tokenizer, torch.device(device), dtype)
    if len(spec.text_encoders) == 1:
        pipe: Any = _untyped(diffusers.StableDiffusionPipeline)(
            **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    else:
        pipe = _untyped(diffusers.StableDiffusionXLPipeline)(**components)
    return save_pipeline(pipe, out, out / CLIP_SCRATCH)


def _build_components(
    spec: _Arch, tokenizer: Any, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    special = clip_special_ids(tokenizer)
    components: dict[str, Any] = {}
    with torch.device(device):
        torch.manual_seed(SEED)
        components["unet"] = _cast(_untyped(diffusers.UNet2DConditionModel)(**spec.unet), dtype)
        torch.manual_seed(SEED + 1)
        components["vae"] = _cast(_untyped(diffusers.AutoencoderKL)(**spec.vae), dtype)
        for i, text_config in enumerate(spec.text_encoders):
            torch.manual_seed(SEED + 2 + i)
            config = CLIPTextConfig(**text_config, **special)
            # SDXL's second encoder contributes the pooled, projected embedding.
            model_cls = CLIPTextModelWithProjection if i == 1 else CLIPTextModel
            suffix = "" if i == 0 else f"_{i + 1}"
            components[f"text_encoder{suffix}"] = _cast(model_cls(config), dtype)
            components[f"tokenizer{suffix}"] = tokenizer
    scheduler_cls = getattr(diffusers, spec.scheduler)
    components["scheduler"] = scheduler_cls.from_config({**_SCHEDULE, **spec.scheduler_config})
    return components


def _untyped(cls: Any) -> Any:
    # diffusers' partial annotations make strict mypy reject its constructors.
    return cls


def _cast(module: Any, dtype: torch.dtype) -> Any:
    # Models are built in float32; casting a float32 model is a no-op that only logs warnings.
    return module if dtype == torch.float32 else module.to(dtype)
