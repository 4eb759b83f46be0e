"""The adapters ``benchmarks.adapters`` serves: random LoRA files at the rank and on the layers
a family's published adapters usually have, written to the object store the engine reads them
from, and the Zipf-distributed choice of adapter a stream of requests makes.

Ranks (``RECIPES``): diffusers' training scripts default to rank 4, the low end of what is
published. SDXL adapters are commonly trained at 16-32 (kohya's ``network_dim``); 32, the upper
end, is taken so the figures do not flatter. FLUX.1 adapters are commonly 16: ostris'
ai-toolkit, the usual FLUX.1 LoRA trainer, configures ``linear: 16, linear_alpha: 16``, and
diffusers' FLUX.1 DreamBooth README sizes its memory figures at rank 16. Bytes, first-use time
and the per-row update's matrix products all grow with the rank; ``--rank`` sets another.
Targets: the modules diffusers' LoRA training scripts adapt (PEFT's suffix match): a UNet's
attention projections, and on FLUX.1 also the text stream's projections and both
feed-forwards.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamgen.store.base import ObjectStore
from tests.support.lora import lora_bytes

__all__ = [
    "RECIPES",
    "AdapterShelf",
    "LoraRecipe",
    "denoiser_shape",
    "device_bytes",
    "target_layers",
    "zipf_choices",
]

# diffusers' train_dreambooth_lora_sdxl.py / train_text_to_image_lora_sdxl.py (UNet).
UNET_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
# diffusers' train_dreambooth_lora_flux.py without --lora_layers: the double blocks' image and
# text attention and feed-forwards; the single blocks' q, k and v match "attn.to_*" too.
FLUX_TARGETS = (
    "attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0",
    "attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
    "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
)  # fmt: skip
# Small enough that a rank-32 update stays a small part of a layer's output (no inf in fp16
# over 500 adapted layers); the matrix products cost the same whatever the values.
MAGNITUDE = 0.01


@dataclass(frozen=True)
class LoraRecipe:
    """What a family's published adapters usually are."""

    rank: int
    targets: tuple[str, ...]
    prefix: str  # diffusers' key prefix for the denoiser: ``unet.`` or ``transformer.``


RECIPES = {
    "sd15": LoraRecipe(32, UNET_TARGETS, "unet."),
    "sdxl": LoraRecipe(32, UNET_TARGETS, "unet."),
    "flux": LoraRecipe(16, FLUX_TARGETS, "transformer."),
}


def target_layers(denoiser: Any, targets: tuple[str, ...]) -> list[str]:
    """The ``Linear`` layers of ``denoiser`` that PEFT's ``target_modules=targets`` adapts: a
    name equal to a target or ending in ``.`` and the target."""
    ends = tuple(f".{t}" for t in targets)
    return [
        name
        for name, module in denoiser.named_modules()
        if isinstance(module, torch.nn.Linear) and (name in targets or name.endswith(ends))
    ]


def denoiser_shape(directory: Path) -> Any:
    """The pipeline's UNet or transformer built on the meta device from its config: its layer
    names and shapes without its weights, and without what the engine's knobs change (the
    fused projections of ``engine.fuse_qkv``), as adapters are trained and written."""
    import diffusers

    index = json.loads((directory / "model_index.json").read_text())
    name = "unet" if "unet" in index else "transformer"
    model_class = getattr(diffusers, index[name][1])
    with torch.device("meta"):
        return model_class.from_config(model_class.load_config(directory / name))


def device_bytes(denoiser: Any, targets: tuple[str, ...], rank: int, dtype: torch.dtype) -> int:
    """One adapter's bytes on the device: ``rank * (in + out)`` weights a layer, in ``dtype``
    (the model's: the loader converts the file's)."""
    layers = [denoiser.get_submodule(name) for name in target_layers(denoiser, targets)]
    size = torch.empty((), dtype=dtype).element_size()
    return sum(rank * (int(m.in_features) + int(m.out_features)) for m in layers) * size


class AdapterShelf:
    """Random adapters for one model, each written once to ``store`` under a key that names
    everything its bytes depend on (architecture, rank, dtype, name), so a later run reuses
    the file (the store keeps the first object written under a key) and never a stale one."""

    def __init__(
        self,
        store: ObjectStore,
        denoiser: Any,
        recipe: LoraRecipe,
        *,
        arch: str,
        rank: int,
        dtype: torch.dtype,
        device: str,
    ) -> None:
        self.layers = target_layers(denoiser, recipe.targets)
        if not self.layers:
            raise ValueError(f"{arch}: no Linear layer matches {recipe.targets}")
        self._store = store
        self._denoiser = denoiser
        self._recipe = recipe
        self.rank = rank
        self.dtype = dtype
        self._device = device
        self._folder = f"adapters/{arch}/r{rank}-{str(dtype).removeprefix('torch.')}"
        self._uris: dict[str, str] = {}
        self.written = 0
        self.file_bytes = 0  # of the last adapter named: all have the same layers and rank
        self.write_s = 0.0  # drawing and storing the files written by this run

    def uri(self, name: str) -> str:
        """The URI of adapter ``name``, written first if the store lacks it."""
        if name in self._uris:
            return self._uris[name]
        key = f"{self._folder}/{name}.safetensors"
        found = self._store.stat(key)
        if found is None:
            start = time.perf_counter()
            data = lora_bytes(
                self._denoiser,
                self.layers,
                seed=zlib.crc32(name.encode()),
                rank=self.rank,
                prefix=self._recipe.prefix,
                magnitude=MAGNITUDE,
                alpha=float(self.rank),  # diffusers' scripts: lora_alpha = rank, a scale of 1
                dtype=self.dtype,
                device=self._device,
            )
            found = self._store.put(
                key, data, index=0, content_type="application/octet-stream", metadata={}
            )
            self.written += 1
            self.write_s += time.perf_counter() - start
        self._uris[name] = found.uri
        self.file_bytes = found.size_bytes
        return found.uri


def zipf_choices(adapters: int, requests: int, exponent: float, seed: int) -> list[int]:
    """Which of ``adapters`` adapters (0 the most popular) each of ``requests`` requests names:
    adapter ``k`` with probability proportional to ``1 / (k + 1) ** exponent``."""
    if adapters < 1 or requests < 0 or exponent < 0:
        raise ValueError(f"adapters={adapters}, requests={requests}, exponent={exponent}")
    weights = 1.0 / np.arange(1, adapters + 1, dtype=np.float64) ** exponent
    chosen = np.random.default_rng(seed).choice(adapters, size=requests, p=weights / weights.sum())
    return [int(k) for k in chosen]
