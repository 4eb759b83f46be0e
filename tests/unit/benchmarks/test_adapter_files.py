"""The benchmark's adapters: files the engine's parser reads on the real tiny SDXL and FLUX.1
denoisers, layer for layer what PEFT's target_modules would adapt, sized as the benchmark
counts them; and the Zipf stream's draw."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import pytest
import torch

from benchmarks.adapter_files import (
    RECIPES,
    AdapterShelf,
    denoiser_shape,
    device_bytes,
    target_layers,
    zipf_choices,
)
from benchmarks.families import model_directory
from benchmarks.family_runners import RUNS
from streamgen.engine.adapters import lora_layers
from streamgen.store import FileStore


@pytest.mark.parametrize(
    ("family", "must_adapt"),
    [
        ("sdxl", ["attn1.to_q", "attn2.to_k", "attn2.to_out.0"]),
        ("flux-dev", ["ff_context.net.2", "attn.to_add_out", "single_transformer_blocks"]),
    ],
)
def test_an_adapter_file_fits_the_real_denoiser_layer_for_layer(
    family: str, must_adapt: list[str], tmp_path: Path
) -> None:
    run = RUNS[family]
    directory = model_directory(run, tiny=True, cuda=False)
    recipe = RECIPES[run.family]
    shape = denoiser_shape(directory)
    shelf = AdapterShelf(FileStore(tmp_path), shape, recipe, arch=run.tiny, rank=4,
                         dtype=torch.float16, device="cpu")  # fmt: skip
    uri = shelf.uri("a")
    assert uri == shelf.uri("a") and shelf.written == 1  # named twice, written once
    data = (tmp_path / f"adapters/{run.tiny}/r4-float16/a.safetensors").read_bytes()
    assert f"file://{tmp_path}" in uri and shelf.file_bytes == len(data)

    import diffusers

    name = "unet" if run.family == "sdxl" else "transformer"
    model_class = getattr(diffusers, type(shape).__name__)
    denoiser = model_class.from_pretrained(directory / name)
    layers = lora_layers(data, denoiser)  # the engine's parser and fit check
    assert sorted(layers) == sorted(shelf.layers) == sorted(target_layers(denoiser, recipe.targets))
    assert all(any(part in layer for layer in layers) for part in must_adapt)
    nbytes = sum(t.numel() * 4 for lr in layers.values() for t in (lr.down, lr.up))
    assert nbytes == device_bytes(shape, recipe.targets, 4, torch.float32)
    header = json.loads(data[8 : 8 + struct.unpack("<Q", data[:8])[0]])
    metadata = json.loads(header.pop("__metadata__")["lora_adapter_metadata"])
    owner = recipe.prefix.removesuffix(".")
    assert (metadata[f"{owner}.r"], metadata[f"{owner}.lora_alpha"]) == (4, 4.0)  # scale 1
    assert {info["dtype"] for info in header.values()} == {"F16"}
    assert all(key.startswith(recipe.prefix) for key in header)


def test_target_layers_match_as_peft_does() -> None:
    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.to_q = torch.nn.Linear(2, 2)
            self.xto_q = torch.nn.Linear(2, 2)  # ends in "to_q", not in ".to_q"
            self.to_out = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Dropout()])

    model = torch.nn.ModuleDict({"attn": Attention(), "to_k": torch.nn.Linear(2, 2)})
    assert target_layers(model, ("to_q", "to_k", "to_out.0", "to_out.1")) == [
        "attn.to_q",
        "attn.to_out.0",
        "to_k",
    ]


def test_the_zipf_draw_is_seeded_and_favours_the_first_adapters() -> None:
    drawn = zipf_choices(1000, 5000, 1.0, seed=26)
    assert drawn == zipf_choices(1000, 5000, 1.0, seed=26)
    assert drawn != zipf_choices(1000, 5000, 1.0, seed=27)
    assert min(drawn) >= 0 and max(drawn) < 1000
    counts = Counter(drawn)
    # p(0) = 1 / H(1000) = 13.4 %, p(1) half that: 670 and 335 expected of 5000.
    assert counts[0] > counts[1] > counts[9] and 550 < counts[0] < 800
    assert len(counts) > 300  # the long tail is drawn too
    with pytest.raises(ValueError, match="adapters=0"):
        zipf_choices(0, 10, 1.0, seed=1)
