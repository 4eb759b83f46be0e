"""Batch-size buckets for CUDA graphs: which graph a batch runs in, and how it is padded.

A CUDA graph replays fixed tensor shapes, so every batch size would need a graph of its own
(memory, capture time). Instead a batch runs in the graph of the smallest bucket that holds it,
padded with filler rows whose outputs are thrown away. Rows never mix inside the denoiser or the
VAE (normalisation and attention are per row), so filler cannot change a real row's result;
only the batch size the kernels see does, exactly as between any two batch sizes in eager mode.

Pure logic, no torch: the graph runner (``graphs``) copies the real rows into a bucket's static
inputs, zeroes the filler and keeps the first ``rows`` outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PaddingPlan", "batch_buckets", "bucket_for"]


def batch_buckets(max_batch: int) -> tuple[int, ...]:
    """Powers of two below ``max_batch``, then ``max_batch`` itself: 1, 2, 4, ..., max.

    At most one graph per doubling keeps the padding waste under half a batch and the number of
    graphs (each holding its own static inputs) at about log2(max) + 1.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    buckets, size = [], 1
    while size < max_batch:
        buckets.append(size)
        size *= 2
    buckets.append(max_batch)
    return tuple(buckets)


def bucket_for(rows: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``rows``; ValueError if none does."""
    if rows < 1:
        raise ValueError(f"a batch has at least one row, got {rows}")
    fitting = [b for b in buckets if b >= rows]
    if not fitting:
        raise ValueError(f"{rows} rows exceed the largest bucket ({max(buckets, default=0)})")
    return min(fitting)


@dataclass(frozen=True, slots=True)
class PaddingPlan:
    """``rows`` real rows run in a graph of ``bucket`` rows; rows[rows:] are filler."""

    rows: int
    bucket: int

    @classmethod
    def for_rows(cls, rows: int, buckets: Sequence[int]) -> PaddingPlan:
        return cls(rows, bucket_for(rows, buckets))

    @property
    def filler(self) -> int:
        return self.bucket - self.rows
