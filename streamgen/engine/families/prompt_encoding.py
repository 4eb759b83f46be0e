"""The text encoders several families share, called as their stock pipelines call them:
CLIP (SD 1.x, SDXL, SD3.5; FLUX.1 reads only its pooled output) and T5 (FLUX.1, SD3.5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["clip_encode", "t5_encode"]


def clip_encode(
    tokenizer: Any,
    encoder: torch.nn.Module,
    texts: Sequence[str],
    device: torch.device,
    *,
    all_layers: bool = False,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(last hidden state or projected pooled output, all hidden states if asked)."""
    tokens = tokenizer(
        list(texts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    output = encoder(tokens.input_ids.to(device), output_hidden_states=all_layers)
    layers = tuple(output.hidden_states) if all_layers else ()
    return output[0], layers


def t5_encode(
    tokenizer: Any, encoder: Any, texts: Sequence[str], device: torch.device, tokens: int
) -> torch.Tensor:
    """T5's last hidden state of ``texts`` padded (or cut) to ``tokens``, in its dtype."""
    ids = tokenizer(
        list(texts),
        padding="max_length",
        max_length=tokens,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    states: torch.Tensor = encoder(ids.to(device), output_hidden_states=False)[0]
    return states.to(encoder.dtype)
