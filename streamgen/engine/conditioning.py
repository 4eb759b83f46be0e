"""Text conditioning for a batch, whatever the family: named tensors with a row layout.

A family's encoder fills it; its noise predictor reads it; the denoising loop, the CUDA graphs
and the AOT packages only move its rows around, never asking what the tensors mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

__all__ = ["Conditioning"]


@dataclass(frozen=True)
class Conditioning:
    """Tensors whose first dimension holds ``copies * B`` rows for a batch of ``B`` images.

    ``copies=2`` is the classifier-free-guidance layout ``[negative_0..B-1, positive_0..B-1]``;
    ``copies=1`` one row per image (a guidance-distilled or guidance-free model).
    """

    tensors: Mapping[str, torch.Tensor]
    copies: int = 2

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def get(self, name: str) -> torch.Tensor | None:
        return self.tensors.get(name)

    @property
    def rows(self) -> int:
        """The batch size ``B`` (images, not rows of the tensors)."""
        first = next(iter(self.tensors.values()))
        return first.shape[0] // self.copies

    def select(self, keep: Sequence[int]) -> Conditioning:
        """Keep batch rows ``keep`` (indices into ``0..B-1``) in every copy."""
        half = self.rows
        first = next(iter(self.tensors.values()))
        rows = torch.tensor(
            [c * half + i for c in range(self.copies) for i in keep], device=first.device
        )
        return Conditioning({k: v[rows] for k, v in self.tensors.items()}, self.copies)

    def signature(self) -> tuple[tuple[str, tuple[int, ...], torch.dtype], ...]:
        """Names, per-row shapes and dtypes: what a compiled or captured call depends on."""
        return tuple((k, tuple(v.shape[1:]), v.dtype) for k, v in sorted(self.tensors.items()))
