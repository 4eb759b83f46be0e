"""A LoRA adapter file, read and checked against the denoiser it is for. Pure: bytes in.

Only safetensors is read (never a pickle: loading one runs code), its header parsed here before
any tensor is, and only the diffusers/PEFT key formats (docs/decisions.md, "Adapters"):

- ``[unet.|transformer.]<layer>.lora_A.weight`` and ``.lora_B.weight`` (PEFT, what diffusers'
  ``save_lora_weights`` writes), or ``.lora.down.weight`` and ``.lora.up.weight`` (diffusers'
  older ``LoRACompatibleLinear`` names);
- every ``<layer>`` a ``Linear`` of the denoiser (or its part of a fused projection:
  ``fit``), ``lora_A``/``down`` shaped (rank, in) and ``lora_B``/``up`` (out, rank).

The update's scale is PEFT's ``lora_alpha / r`` (``/ sqrt(r)`` with rsLoRA) when the file
carries diffusers' ``lora_adapter_metadata`` (what ``save_lora_weights`` writes with
``unet_lora_adapter_metadata``), else 1 (diffusers' own default: alpha = rank); it is folded
into ``up`` once, at load. Per-layer ``rank_pattern``/``alpha_pattern`` and DoRA are refused.

Anything else (kohya's ``lora_unet_*``, text-encoder layers, ``alpha`` tensors, DoRA
magnitudes, convolutions) is refused with :class:`AdapterUnfit` saying what was found.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from streamgen.engine.adapters.fit import AdapterUnfit, LoraLayer, fitted

__all__ = ["AdapterUnfit", "LoraLayer", "lora_layers"]

# A header is a few hundred bytes per tensor; one past this is no adapter and would only cost
# memory to parse.
MAX_HEADER_BYTES = 16 * 1024 * 1024
DTYPES = {"F16", "BF16", "F32"}
METADATA_KEY = "lora_adapter_metadata"  # diffusers' LORA_ADAPTER_METADATA_KEY
_PREFIXES = ("unet.", "transformer.")
_SUFFIXES = {
    ".lora_A.weight": "down",
    ".lora_B.weight": "up",
    ".lora.down.weight": "down",
    ".lora.up.weight": "up",
}


def lora_layers(data: bytes, denoiser: Any) -> dict[str, LoraLayer]:
    """The adapter in ``data`` as denoiser layer name -> update, on the CPU in its file's dtype.

    Raises :class:`AdapterUnfit` naming the first reason it cannot be applied to ``denoiser``.
    """
    header = _header(data)
    scaling = _scaling(header.pop("__metadata__", None))
    targets = _targets(header)
    from safetensors.torch import load

    try:
        tensors = load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError for bad offsets
        raise AdapterUnfit(f"is not a valid safetensors file: {exc}") from None
    layers = {}
    for layer, keys in targets.items():
        if set(keys) != {"down", "up"}:
            missing = "up (lora_B)" if "up" not in keys else "down (lora_A)"
            raise AdapterUnfit(f"layer {layer!r} has no {missing} weight")
        update = fitted(layer, tensors[keys["down"]], tensors[keys["up"]], denoiser)
        if not (update.down.isfinite().all() and update.up.isfinite().all()):
            # Found here, it fails its own request naming the adapter; found in the latents,
            # it would be retried and reported as the batch's NaN.
            raise AdapterUnfit(f"layer {layer!r} holds NaN or inf weights")
        if scaling.rank is not None and update.down.shape[0] != scaling.rank:
            raise AdapterUnfit(
                f"layer {layer!r} has rank {update.down.shape[0]} but the file's "
                f"lora_adapter_metadata says r={scaling.rank}"
            )
        if scaling.factor != 1.0:
            update = dataclasses.replace(update, up=update.up * scaling.factor)
        layers[layer] = update
    return layers


@dataclass(frozen=True)
class _Scaling:
    factor: float = 1.0  # PEFT's ``scaling``: lora_alpha / r, or / sqrt(r) with rsLoRA
    rank: int | None = None  # the r every layer must have, where the metadata names one


def _scaling(metadata: Any) -> _Scaling:
    """PEFT's scaling from diffusers' ``lora_adapter_metadata`` (a LoraConfig as JSON, its
    keys prefixed ``unet.``/``transformer.`` by the pipelines' ``save_lora_weights``)."""
    raw = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    if raw is None:
        return _Scaling()
    try:
        config = json.loads(raw)
    except (TypeError, ValueError):
        raise AdapterUnfit(f"has a {METADATA_KEY} that is not JSON") from None
    if not isinstance(config, dict):
        raise AdapterUnfit(f"has a {METADATA_KEY} that is not a JSON object")
    for prefix in _PREFIXES:
        if any(key.startswith(prefix) for key in config):
            config = {k.removeprefix(prefix): v for k, v in config.items() if k.startswith(prefix)}
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise AdapterUnfit(f"sets {key} in its {METADATA_KEY}; per-layer ranks are not read")
    if config.get("use_dora"):
        raise AdapterUnfit("is a DoRA adapter (use_dora); only plain LoRA is read")
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if alpha is None:
        return _Scaling()
    if not isinstance(rank, int) or rank <= 0 or not isinstance(alpha, int | float):
        raise AdapterUnfit(f"has lora_alpha={alpha!r} and r={rank!r}; need numbers, r > 0")
    factor = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)
    return _Scaling(float(factor), rank)


def _header(data: bytes) -> dict[str, Any]:
    """The safetensors JSON header: 8 bytes of little-endian length, then that much JSON."""
    not_safetensors = AdapterUnfit("is not a safetensors file (only safetensors is read)")
    if len(data) < 8:
        raise not_safetensors
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(len(data) - 8, MAX_HEADER_BYTES) or data[8:9] != b"{":
        raise not_safetensors
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, ValueError):
        raise not_safetensors from None
    if not isinstance(header, dict):
        raise not_safetensors
    if not set(header) - {"__metadata__"}:
        raise AdapterUnfit("holds no tensors")
    return header


def _targets(header: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Layer name -> {"down": key, "up": key}, refusing every key of another format."""
    targets: dict[str, dict[str, str]] = {}
    for key, info in header.items():
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if dtype not in DTYPES:
            raise AdapterUnfit(f"tensor {key!r} is {dtype}; adapters must be F16, BF16 or F32")
        layer, role = _parsed_key(key)
        if role in targets.setdefault(layer, {}):
            raise AdapterUnfit(f"layer {layer!r} has two {role} weights ({key!r})")
        targets[layer][role] = key
    return targets


def _parsed_key(key: str) -> tuple[str, str]:
    if key.startswith(("lora_unet_", "lora_te", "lora_transformer_")) or key.endswith(".alpha"):
        raise AdapterUnfit(
            f"key {key!r} is in kohya's format; only diffusers/PEFT keys "
            "(<layer>.lora_A.weight, <layer>.lora_B.weight) are read"
        )
    if key.startswith(("text_encoder", "te_", "te1", "te2")):
        raise AdapterUnfit(f"key {key!r} is for a text encoder; adapters apply to the denoiser")
    for suffix, role in _SUFFIXES.items():
        if key.endswith(suffix):
            layer = key.removesuffix(suffix)
            for prefix in _PREFIXES:
                layer = layer.removeprefix(prefix)
            return layer, role
    raise AdapterUnfit(
        f"key {key!r} is not a LoRA weight this worker reads (<layer>.lora_A.weight, "
        "<layer>.lora_B.weight, <layer>.lora.down.weight, <layer>.lora.up.weight)"
    )
