"""Each row of a batch gets its own adapters: a per-sample low-rank update, grouped by adapter.

Every ``Linear`` that some adapter of the batch targets gets, while the batch runs, a forward
hook that adds ``scale_i * (x_i @ down.T) @ up.T`` to the rows ``i`` of that adapter (the
layout multi-adapter LLM servers use): the base weights are never changed, so rows without an
adapter, or with another, are untouched, and an image does not depend on its batch companions.
The sum is the one PEFT's ``lora.Linear`` computes (base output, plus the update times its
scale), so an image equals stock diffusers with the adapter loaded by ``load_lora_weights``.

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
    """Which rows of a running batch use which adapter, as rows leave between steps."""

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
            return  # asked before every step: the index tensors stay as they are
        self._kept = self.alive = rows
        by_adapter: dict[int, tuple[LoadedAdapter, list[int], list[float]]] = {}
        for position, row in enumerate(self.alive):
            for used in self._rows[row]:
                entry = by_adapter.setdefault(id(used.adapter), (used.adapter, [], []))
                entry[1].append(position)
                entry[2].append(used.scale)
        self._groups = list(by_adapter.values())
        self._indices: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _index(
        self, group: int, copies: int, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input rows of group ``group`` over ``copies`` copies, and each one's scale."""
        found = self._indices.get((group, copies))
        if found is None:
            _, positions, scales = self._groups[group]
            rows = len(self.alive)
            index = [k * rows + p for k in range(copies) for p in positions]
            found = (
                torch.tensor(index, device=self._device),
                torch.tensor(scales * copies, device=self._device, dtype=dtype),
            )
            self._indices[(group, copies)] = found
        return found

    def hook(self, layer: str) -> Any:
        def add_updates(module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            x = args[0]
            rows = len(self.alive)
            copies, left = divmod(x.shape[0], rows)
            if left or not copies:
                raise RuntimeError(f"layer {layer} saw {x.shape[0]} rows in a batch of {rows}")
            for group, (adapter, _, _) in enumerate(self._groups):
                updates = adapter.by_module.get(layer, ())
                if not updates:
                    continue
                index, scale = self._index(group, copies, output.dtype)
                rows = x[index]
                for update in updates:
                    delta = (rows @ update.down.T) @ update.up.T
                    delta = delta * scale.view(-1, *([1] * (delta.dim() - 1)))
                    # A slice of the last dimension is a view: index_add_ writes through it.
                    part = output if update.out is None else output[..., slice(*update.out)]
                    part.index_add_(0, index, delta.to(output.dtype))
            return output

        return add_updates


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
