"""Each row of a batch gets its own adapters: a per-sample low-rank update in one batch.

Every ``Linear`` that some adapter of the batch targets gets, while the batch runs, a forward
hook that adds ``scale_i * (x_i @ down_i.T) @ up_i.T`` to each row ``i`` (the layout
multi-adapter LLM servers use), as two batched matrix products over all rows whatever their
adapters: the base weights are never changed, so rows without an adapter, or with another, are
untouched, and an image does not depend on its batch companions. The sum is the one PEFT's
``lora.Linear`` computes (base output, plus the update times its scale), so an image equals
stock diffusers with the adapter loaded by ``load_lora_weights``.

The denoiser sees the batch's rows once per copy of the conditioning (CFG: the negative
copy, then the positive), so row ``r`` of copy ``k`` is input row ``k * rows + r``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from streamgen.engine.adapters.fit import LoraLayer

__all__ = [
    "AdapterLoadTime",
    "AdapterStats",
    "LoadedAdapter",
    "RowAdapters",
    "ScaledAdapter",
    "Uncompiled",
    "adapters_applied",
]


@dataclass(frozen=True)
class AdapterLoadTime:
    """Where an adapter's first use went, in seconds: the store read, the parse (header,
    tensors, the fit to the model, the sha256) and the copy to the device."""

    fetch_s: float = 0.0
    parse_s: float = 0.0
    copy_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.fetch_s + self.parse_s + self.copy_s


@dataclass(frozen=True, eq=False)
class LoadedAdapter:
    """One adapter file, checked against one model and moved to its device and dtype."""

    uri: str
    sha256: str
    layers: dict[str, LoraLayer]  # by the adapter's layer name
    load_time: AdapterLoadTime = AdapterLoadTime()
    # by the module each is added to: several in one where engine.fuse_qkv fused q, k and v
    by_module: dict[str, list[LoraLayer]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_module: dict[str, list[LoraLayer]] = {}
        for layer in self.layers.values():
            by_module.setdefault(layer.module, []).append(layer)
        object.__setattr__(self, "by_module", by_module)

    @property
    def nbytes(self) -> int:
        tensors = [t for layer in self.layers.values() for t in (layer.down, layer.up)]
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(frozen=True)
class ScaledAdapter:
    """An adapter as one request uses it."""

    adapter: LoadedAdapter
    scale: float


class RowAdapters:
    """Which rows of a running batch use which adapters, as rows leave between steps."""

    def __init__(self, rows: Sequence[Sequence[ScaledAdapter]], device: torch.device) -> None:
        self._rows = [tuple(row) for row in rows]
        self._device = device
        self._kept: list[int] | None = None
        self.keep(range(len(rows)))

    @classmethod
    def of(
        cls, rows: Sequence[Sequence[ScaledAdapter]], device: torch.device
    ) -> RowAdapters | None:
        """The batch's adapters by row; None when no row has one."""
        return cls(rows, device) if any(rows) else None

    @property
    def layers(self) -> list[str]:
        """Every layer some row's adapter targets."""
        return sorted({m for row in self._rows for used in row for m in used.adapter.by_module})

    def keep(self, alive: Sequence[int]) -> None:
        """The original rows still in the batch, in batch order."""
        rows = list(alive)
        if rows == self._kept:
            return  # asked before every step: the layouts stay as they are
        self._kept = self.alive = rows
        self._layouts: dict[tuple[str, int], list[_Stacked]] = {}

    def _layout(self, layer: str, copies: int, like: torch.Tensor) -> list[_Stacked]:
        """What ``layer`` adds to each input row, by output slice: built once per batch."""
        found = self._layouts.get((layer, copies))
        if found is None:
            per_row = [
                [
                    (update, used.scale)
                    for used in self._rows[row]
                    for update in used.adapter.by_module.get(layer, ())
                ]
                for row in self.alive
            ]
            slices = sorted({u.out or (0, 0) for row in per_row for u, _ in row})
            found = [
                _Stacked(
                    [[(u, s) for u, s in row if (u.out or (0, 0)) == out] for row in per_row]
                    * copies,
                    None if out == (0, 0) else out,
                    like,
                )
                for out in slices
            ]
            self._layouts[(layer, copies)] = found
        return found

    def hook(self, layer: str) -> Any:
        def add_updates(module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            x = args[0]
            rows = len(self.alive)
            copies, left = divmod(x.shape[0], rows)
            if left or not copies:
                raise RuntimeError(f"layer {layer} saw {x.shape[0]} rows in a batch of {rows}")
            for stacked in self._layout(layer, copies, output):
                stacked.add_to(x, output)
            return output

        return add_updates


class _Stacked:
    """One output slice's updates for every input row as two batched matrix products:
    ``h = x_i @ downs_i.T`` scaled per rank column, then ``out_i += h @ ups_i.T``. A row's
    adapters are concatenated along the rank and padded with zeros to the batch's widest, so
    rows with other adapters, or none, share the same two kernels and add exactly zero. The
    per-row matrices are stacked at every call, not kept: they would cost a copy of every
    adapter per row for as long as the batch runs."""

    def __init__(
        self,
        rows: list[list[tuple[LoraLayer, float]]],
        out: tuple[int, int] | None,
        like: torch.Tensor,
    ) -> None:
        self.out = out
        ranks = [sum(u.down.shape[0] for u, _ in row) for row in rows]
        rank = max(ranks)
        first = next(u for row in rows for u, _ in row)
        width, inputs = first.up.shape[0], first.down.shape[1]
        zeros: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for used in set(ranks) - {rank}:
            pad = rank - used
            zeros[used] = (like.new_zeros(pad, inputs), like.new_zeros(width, pad))
        self._downs = [
            [u.down for u, _ in row] + ([zeros[used][0]] if used < rank else [])
            for row, used in zip(rows, ranks, strict=True)
        ]
        self._ups = [
            [u.up for u, _ in row] + ([zeros[used][1]] if used < rank else [])
            for row, used in zip(rows, ranks, strict=True)
        ]
        scales = [
            [s for u, s in row for _ in range(u.down.shape[0])] + [0.0] * (rank - used)
            for row, used in zip(rows, ranks, strict=True)
        ]
        self._scales = torch.tensor(scales, dtype=like.dtype, device=like.device).unsqueeze(1)

    def add_to(self, x: torch.Tensor, output: torch.Tensor) -> None:
        """``output`` (the layer's, for input ``x``) plus every row's update, in place."""
        downs = torch.stack([d[0] if len(d) == 1 else torch.cat(d) for d in self._downs])
        ups = torch.stack([u[0] if len(u) == 1 else torch.cat(u, dim=1) for u in self._ups])
        rows = x.shape[0]
        h = torch.bmm(x.reshape(rows, -1, x.shape[-1]), downs.transpose(1, 2))
        h.mul_(self._scales)
        if self.out is None and output.is_contiguous():
            output.view(rows, -1, output.shape[-1]).baddbmm_(h, ups.transpose(1, 2))
            return
        part = output if self.out is None else output[..., slice(*self.out)]
        part.add_(torch.bmm(h, ups.transpose(1, 2)).view(part.shape))


@contextmanager
def adapters_applied(denoiser: Any, adapted: RowAdapters | None) -> Iterator[None]:
    """Hooks on the layers the batch's adapters target, for as long as the batch runs."""
    layers = [] if adapted is None else adapted.layers
    handles = [
        denoiser.get_submodule(name).register_forward_hook(adapted.hook(name))  # type: ignore[union-attr]
        for name in layers
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class Uncompiled:
    """``denoiser`` called eagerly even where ``engine.compile`` compiled it in place
    (``nn.Module.compile``): the hooks above must run as Python, every call."""

    def __init__(self, denoiser: Any) -> None:
        self._denoiser = denoiser

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._denoiser._call_impl(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._denoiser, name)


@dataclass(frozen=True)
class AdapterStats:
    """What the engine's adapters cost so far (``streamgen_adapter_*`` metrics)."""

    eager_batches: int  # batches with adapters that skipped a configured fast path
    loads: int  # adapter files read and checked (including refused ones)
    hits: int  # adapters found in the cache
    evictions: int
    cached: int
    cached_bytes: int
