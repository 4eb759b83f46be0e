"""Text conditioning for a batch: one row per image, negatives first (the CFG layout)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from streamgen.engine.loading import PipelineParts

__all__ = ["Conditioning", "encode_prompts"]


@dataclass(frozen=True)
class Conditioning:
    """UNet conditioning for ``2B`` rows: ``[negative_0..B-1, positive_0..B-1]``."""

    embeds: torch.Tensor
    # SDXL only: pooled text embedding and (original size, crop, target size) per row.
    pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None

    def select(self, keep: Sequence[int]) -> Conditioning:
        """Keep batch rows ``keep`` (indices into ``0..B-1``) in both halves."""
        half = self.embeds.shape[0] // 2
        rows = torch.tensor([*keep, *(half + i for i in keep)], device=self.embeds.device)
        return Conditioning(
            embeds=self.embeds[rows],
            pooled=None if self.pooled is None else self.pooled[rows],
            time_ids=None if self.time_ids is None else self.time_ids[rows],
        )

    def added_cond_kwargs(self) -> dict[str, torch.Tensor] | None:
        if self.pooled is None or self.time_ids is None:
            return None
        return {"text_embeds": self.pooled, "time_ids": self.time_ids}


@torch.no_grad()
def encode_prompts(
    parts: PipelineParts,
    prompts: Sequence[str],
    negatives: Sequence[str],
    *,
    width: int,
    height: int,
    device: torch.device,
) -> Conditioning:
    texts = [*negatives, *prompts]
    if not parts.is_sdxl:
        embeds = _encode(parts.tokenizers[0], parts.text_encoders[0], texts, device)[0]
        return Conditioning(embeds=embeds.to(parts.dtype))
    hidden_states = []
    pooled = torch.empty(0)
    for tokenizer, encoder in zip(parts.tokenizers, parts.text_encoders, strict=True):
        # SDXL conditions on the penultimate layer of both encoders and the pooled, projected
        # output of the second.
        pooled, layers = _encode(tokenizer, encoder, texts, device, all_layers=True)
        hidden_states.append(layers[-2])
    embeds = torch.cat(hidden_states, dim=-1)
    if parts.zero_empty_negative:
        empty = torch.tensor([not n for n in negatives] + [False] * len(prompts), device=device)
        embeds = embeds.masked_fill(empty[:, None, None], 0.0)
        pooled = pooled.masked_fill(empty[:, None], 0.0)
    size = [height, width, 0, 0, height, width]
    time_ids = torch.tensor([size] * len(texts), device=device, dtype=parts.dtype)
    return Conditioning(
        embeds=embeds.to(parts.dtype), pooled=pooled.to(parts.dtype), time_ids=time_ids
    )


def _encode(
    tokenizer: object,
    encoder: torch.nn.Module,
    texts: Sequence[str],
    device: torch.device,
    *,
    all_layers: bool = False,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(last hidden state or projected pooled output, all hidden states if asked)."""
    tokens = tokenizer(  # type: ignore[operator]
        list(texts),
        padding="max_length",
        max_length=tokenizer.model_max_length,  # type: ignore[attr-defined]
        truncation=True,
        return_tensors="pt",
    )
    output = encoder(tokens.input_ids.to(device), output_hidden_states=all_layers)
    layers = tuple(output.hidden_states) if all_layers else ()
    return output[0], layers
