"""Tiny random LoRA adapters in diffusers/PEFT's safetensors format, for the tiny models."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import torch
from safetensors.torch import save

__all__ = ["attention_layers", "lora_bytes"]


def attention_layers(denoiser: Any, *, limit: int | None = None) -> list[str]:
    """The attention projections of ``denoiser`` (what LoRA trainers target), in order."""
    ends = (".to_q", ".to_k", ".to_v", ".to_out.0", ".add_q_proj", ".add_k_proj", ".add_v_proj")
    names = [
        name
        for name, module in denoiser.named_modules()
        if name.endswith(ends) and isinstance(module, torch.nn.Linear)
    ]
    return names[:limit]


def lora_bytes(
    denoiser: Any,
    layers: Iterable[str],
    *,
    seed: int,
    rank: int = 4,
    prefix: str = "unet.",
    names: tuple[str, str] = ("lora_A", "lora_B"),
    magnitude: float = 0.2,
    alpha: float | None = None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> bytes:
    """A safetensors file with a random update of rank ``rank`` for each of ``layers``, keyed
    ``<prefix><layer>.<names[0]>.weight`` / ``.<names[1]>.weight``; large enough to change an
    image of the tiny models visibly. ``alpha``: PEFT's lora_alpha, in the
    ``lora_adapter_metadata`` diffusers' ``save_lora_weights`` writes (scale alpha / rank).
    The weights are drawn on ``device`` (a GPU draws a large adapter in milliseconds) and stored
    as ``dtype``."""
    generator = torch.Generator(device).manual_seed(seed)
    tensors = {}
    layers = list(layers)
    for layer in layers:
        module = denoiser.get_submodule(layer)
        shapes = {names[0]: (rank, module.in_features), names[1]: (module.out_features, rank)}
        for name, shape in shapes.items():
            weight = torch.randn(shape, generator=generator, device=device) * magnitude
            tensors[f"{prefix}{layer}.{name}.weight"] = weight.to(dtype).cpu().contiguous()
    if alpha is None:
        return save(tensors)
    config = {"r": rank, "lora_alpha": alpha, "target_modules": layers}
    owner = prefix.removesuffix(".")
    packed = {f"{owner}.{key}" if owner else key: value for key, value in config.items()}
    return save(tensors, metadata={"lora_adapter_metadata": json.dumps(packed)})
