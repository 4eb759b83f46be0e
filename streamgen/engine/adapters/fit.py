"""Where one layer of an adapter lands in the model it is for: the ``Linear`` of that name, or,
where ``engine.fuse_qkv`` replaced it, its rows of the fused projection.

Fusing concatenates an attention's projections along their outputs (``fused_projections``'s
``FUSED_SOURCES``, in that order: ``to_qkv`` is q, k, v; a cross-attention's ``to_kv`` is k, v;
``to_added_qkv`` the text stream's q, k, v) and drops the sources, so an update for ``to_k``
is added to the second third of ``to_qkv``'s output: the sum the unfused model computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from streamgen.engine.families.fused_projections import FUSED_SOURCES
from streamgen.engine.fp8 import Fp8Linear
from streamgen.errors import GenerationFailed, InvalidRequest

__all__ = ["AdapterUnfit", "LoraLayer", "fitted"]


class AdapterUnfit(GenerationFailed):
    """The adapter cannot be used with this model; its request is invalid, not retried."""

    code = InvalidRequest.code
    retryable = False


@dataclass(frozen=True)
class LoraLayer:
    """The low-rank update of one ``Linear``: ``x @ down.T @ up.T`` added to its output rows
    ``out`` (all of them when None) of the module named ``module``."""

    down: torch.Tensor  # (rank, in_features)
    up: torch.Tensor  # (out_features, rank)
    module: str = ""
    out: tuple[int, int] | None = None


def fitted(layer: str, down: torch.Tensor, up: torch.Tensor, denoiser: Any) -> LoraLayer:
    """The update for ``layer`` placed in ``denoiser``, or AdapterUnfit saying why not."""
    name, out, module = _target(layer, denoiser)
    if not isinstance(module, torch.nn.Linear | Fp8Linear):
        raise AdapterUnfit(
            f"targets layer {layer!r}, a {type(module).__name__}: only Linear layers take adapters"
        )
    width = module.out_features if out is None else out[1] - out[0]
    rank = down.shape[0] if down.dim() == 2 else -1
    if down.shape != (rank, module.in_features) or up.shape != (width, rank):
        raise AdapterUnfit(
            f"layer {layer!r} is Linear({module.in_features}, {width}) but the "
            f"adapter's weights are {tuple(down.shape)} and {tuple(up.shape)} "
            f"(expected (rank, {module.in_features}) and ({width}, rank))"
        )
    return LoraLayer(down, up, name, out)


def _target(layer: str, denoiser: Any) -> tuple[str, tuple[int, int] | None, Any]:
    try:
        return layer, None, denoiser.get_submodule(layer)
    except AttributeError:
        pass
    parent, _, source = layer.rpartition(".")
    for fused, sources in FUSED_SOURCES.items():
        if source not in sources:
            continue
        name = f"{parent}.{fused}" if parent else fused
        try:
            module = denoiser.get_submodule(name)
        except AttributeError:
            continue
        # Every family's fused sources are equally wide (no grouped-query attention).
        width = getattr(module, "out_features", 0) // len(sources)
        start = sources.index(source) * width
        return name, (start, start + width), module
    raise AdapterUnfit(f"targets layer {layer!r}, which this model does not have")
