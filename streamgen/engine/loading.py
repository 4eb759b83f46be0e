"""Load a diffusers pipeline per logical model name and keep the parts the engine drives."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamgen.errors import ConfigError

__all__ = ["PipelineParts", "load_pipeline", "model_sources", "resolve_device", "resolve_dtype"]

log = logging.getLogger(__name__)

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class PipelineParts:
    """The components of one loaded pipeline (SD 1.x: one text encoder; SDXL: two)."""

    name: str
    pipeline: Any
    unet: Any
    vae: Any
    text_encoders: tuple[Any, ...]
    tokenizers: tuple[Any, ...]
    scheduler_config: Mapping[str, Any]
    dtype: torch.dtype
    # The VAE of real SDXL checkpoints overflows in fp16, so it may run in float32.
    vae_dtype: torch.dtype

    @property
    def is_sdxl(self) -> bool:
        return bool(self.unet.config.addition_embed_type == "text_time")

    @property
    def vae_scale_factor(self) -> int:
        return int(2 ** (len(self.vae.config.block_out_channels) - 1))

    @property
    def zero_empty_negative(self) -> bool:
        """SDXL checkpoints are trained with zeros, not the encoding of "", for 'no negative'."""
        return self.is_sdxl and bool(
            getattr(self.pipeline.config, "force_zeros_for_empty_prompt", True)
        )


def model_sources(models: Mapping[str, str]) -> dict[str, str]:
    """NAME -> path or hub id; the first model is also reachable as ``default``."""
    sources = dict(models)
    if sources and "default" not in sources:
        sources["default"] = next(iter(models.values()))
    return sources


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise ConfigError(
            "engine.device", f"{setting!r} is not auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("engine.device", f"{setting!r} asked for, but CUDA is not available")
    if device.type not in {"cpu", "cuda"}:
        raise ConfigError("engine.device", f"{setting!r} is not auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    if setting == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if setting not in _DTYPES:
        raise ConfigError("engine.dtype", f"{setting!r} not in auto|{'|'.join(_DTYPES)}")
    if device.type == "cpu" and setting == "float16":
        raise ConfigError("engine.dtype", "float16 is not supported on the CPU; use float32")
    return _DTYPES[setting]


def load_pipeline(name: str, source: str, dtype: torch.dtype) -> PipelineParts:
    """Load ``source`` (a local directory or a hub id) on the CPU in ``dtype``.

    A local directory is loaded with ``local_files_only`` so that no code path touches the
    network; only a hub id may download.
    """
    import diffusers

    from streamgen.log_routing import quiet_diffusers

    quiet_diffusers()
    loader: Any = diffusers.DiffusionPipeline.from_pretrained

    local = Path(source).expanduser().exists()
    if not local and source.startswith(("/", ".", "~")):
        raise ConfigError(
            f"engine.models[{name}]",
            f"directory {source!r} does not exist. Point --model at a pipeline directory "
            "(`streamgen model init --arch tiny --out DIR` writes one) or at a hub id.",
        )
    try:
        pipeline = loader(
            str(Path(source).expanduser()) if local else source,
            dtype=dtype,
            local_files_only=local,
            # Said explicitly: left to its default, diffusers warns (and asks to install
            # accelerate) on every load where accelerate is absent, as on the CPU demo.
            low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None,
        )
    except (OSError, ValueError) as exc:
        hint = "" if local else " (not a local directory, so it was looked up as a hub id)"
        raise ConfigError(f"engine.models[{name}]", f"cannot load {source!r}{hint}: {exc}") from exc
    if not hasattr(pipeline, "unet") or not hasattr(pipeline, "vae"):
        raise ConfigError(
            f"engine.models[{name}]",
            f"{source!r} is a {type(pipeline).__name__}; a Stable Diffusion (1.x/2.x/XL) "
            "pipeline with a UNet and a VAE is required",
        )
    encoders = tuple(
        e for e in (pipeline.text_encoder, getattr(pipeline, "text_encoder_2", None)) if e
    )
    tokenizers = tuple(t for t in (pipeline.tokenizer, getattr(pipeline, "tokenizer_2", None)) if t)
    vae_dtype = dtype
    # Only SDXL's VAE overflows in fp16 (diffusers' SD 1.x pipeline never upcasts, although
    # AutoencoderKL's force_upcast defaults to true for every checkpoint).
    is_sdxl = pipeline.unet.config.addition_embed_type == "text_time"
    if is_sdxl and dtype == torch.float16 and getattr(pipeline.vae.config, "force_upcast", False):
        vae_dtype = torch.float32
        pipeline.vae.to(vae_dtype)
    for module in (pipeline.unet, pipeline.vae, *encoders):
        module.eval().requires_grad_(False)
    log.info("loaded model %s from %s (%s, %s)", name, source, type(pipeline).__name__, dtype)
    return PipelineParts(
        name=name,
        pipeline=pipeline,
        unet=pipeline.unet,
        vae=pipeline.vae,
        text_encoders=encoders,
        tokenizers=tokenizers,
        scheduler_config=dict(pipeline.scheduler.config),
        dtype=dtype,
        vae_dtype=vae_dtype,
    )
