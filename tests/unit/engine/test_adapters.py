"""Per-request LoRA adapters over the tiny UNet models: equal to stock diffusers with the
adapter loaded by ``load_lora_weights``, mixed in one batch without changing any image, every
bad adapter its own request's INVALID_REQUEST naming it, and each file loaded once."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from streamgen.contracts.request import Adapter, GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.errors import StoreUnavailable
from streamgen.settings import EngineSettings, StoreSettings
from streamgen.store.init_images import InitImageReader
from streamgen.telemetry.adapter_metrics import AdapterCollector
from tests.support.lora import attention_layers, lora_bytes
from tests.support.memory_store import MemoryStore
from tests.unit.engine.conftest import (
    assert_batched_equals_alone,
    assert_same_images,
    pixels,
    request,
    stock_pipeline,
    stock_pixels,
)

STORE = "s3://adapters/lora"


def adapter_engine(
    directory: Path, store: MemoryStore, *, max_bytes: int = 1 << 24
) -> DiffusionEngine:
    files = InitImageReader.from_settings(StoreSettings(url=STORE), store, max_bytes=max_bytes)
    settings = EngineSettings(models={"tiny": str(directory)})
    engine = DiffusionEngine(settings, adapter_files=files)
    unet = engine.parts("tiny").denoiser
    layers = attention_layers(unet)
    store.objects.update(
        {
            f"{STORE}/a.safetensors": lora_bytes(unet, layers, seed=1),
            f"{STORE}/b.safetensors": lora_bytes(unet, layers[::2], seed=2, rank=2),
        }
    )
    return engine


@pytest.fixture(scope="module")
def store() -> MemoryStore:
    return MemoryStore({})


@pytest.fixture(scope="module")
def sd15(tiny_dir: Path, store: MemoryStore) -> DiffusionEngine:
    return adapter_engine(tiny_dir, store)


def adapted(request_id: str, *adapters: tuple[str, float], **fields: Any) -> GenerationRequest:
    refs = tuple(Adapter(f"{STORE}/{name}", scale) for name, scale in adapters)
    return request(request_id, adapters=refs, scheduler="euler", **fields)


@pytest.mark.parametrize(
    ("model_dir", "pipeline_class", "alpha"),
    [
        ("tiny_dir", "StableDiffusionPipeline", None),
        # lora_alpha 8 over rank 4 in the file's metadata: diffusers scales the update by 2.
        ("tiny_dir", "StableDiffusionPipeline", 8.0),
        ("tiny_sdxl_dir", "StableDiffusionXLPipeline", None),
    ],
)
def test_an_adapter_gives_stock_diffusers_image_with_load_lora_weights(
    model_dir: str,
    pipeline_class: str,
    alpha: float | None,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    import diffusers

    directory = request.getfixturevalue(model_dir)
    store = MemoryStore({})
    engine = adapter_engine(directory, store)
    if alpha is not None:
        unet = engine.parts("tiny").denoiser
        store.objects[f"{STORE}/a.safetensors"] = lora_bytes(
            unet, attention_layers(unet), seed=1, alpha=alpha
        )
    asked = adapted("r", ("a.safetensors", 0.7), seed=5)
    ours = pixels(engine.generate([asked])[0])[0]
    pipe = stock_pipeline(pipeline_class, directory)
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    plain = stock_pixels(pipe, asked, guidance_scale=asked.guidance_scale)
    path = tmp_path / "a.safetensors"
    path.write_bytes(store.objects[f"{STORE}/a.safetensors"])
    pipe.load_lora_weights(str(path), adapter_name="a")
    pipe.set_adapters(["a"], adapter_weights=[0.7])
    stock = stock_pixels(pipe, asked, guidance_scale=asked.guidance_scale)
    assert np.abs(ours - stock).max() <= 1
    assert np.abs(ours - plain).max() > 8  # the adapter changed the image


def test_a_batch_mixing_adapters_equals_each_request_alone(sd15: DiffusionEngine) -> None:
    mix = [
        adapted("a", ("a.safetensors", 1.0), seed=1),
        adapted("b", ("b.safetensors", -0.5), seed=2, num_images=2),
        adapted("none", seed=3),
        adapted("ab", ("a.safetensors", 0.5), ("b.safetensors", 1.5), seed=4),
        adapted("a-again", ("a.safetensors", 0.25), seed=5, guidance_scale=3.0),
    ]
    outcomes = assert_batched_equals_alone(sd15, mix)
    assert max(o.batch_size for o in outcomes) == 6
    same = {"seed": 1, "prompt": "a picture of a"}  # request a's, without a's adapter
    same_seed = sd15.generate([adapted("x", **same), adapted("y", ("a.safetensors", 0.0), **same)])
    a, none, zero = pixels(outcomes[0])[0], pixels(same_seed[0])[0], pixels(same_seed[1])[0]
    assert np.abs(a - none).max() > 8
    assert np.abs(zero - none).max() <= 1  # scale 0 is the base model


def test_diffusers_older_lora_down_up_names_give_the_same_image(
    sd15: DiffusionEngine, store: MemoryStore
) -> None:
    unet = sd15.parts("tiny").denoiser
    names = ("lora.down", "lora.up")
    old = lora_bytes(unet, attention_layers(unet), seed=1, names=names)
    store.objects[f"{STORE}/old.safetensors"] = old
    same = {"seed": 3, "prompt": "a lamp"}
    new, older = sd15.generate(
        [
            adapted("n", ("a.safetensors", 1.0), **same),
            adapted("o", ("old.safetensors", 1.0), **same),
        ]
    )
    assert np.abs(pixels(new)[0] - pixels(older)[0]).max() <= 1


def test_the_result_records_each_adapters_uri_sha256_and_scale(
    sd15: DiffusionEngine, store: MemoryStore
) -> None:
    import hashlib

    (outcome,) = sd15.generate([adapted("r", ("b.safetensors", 0.5), ("a.safetensors", 1.0))])
    recorded = [(a.uri, a.sha256, a.scale) for a in outcome.adapters]
    assert recorded == [
        (f"{STORE}/{name}", hashlib.sha256(store.objects[f"{STORE}/{name}"]).hexdigest(), scale)
        for name, scale in (("b.safetensors", 0.5), ("a.safetensors", 1.0))
    ]
    assert sd15.generate([adapted("plain")])[0].adapters == ()


def test_a_row_that_leaves_the_batch_takes_its_adapter_with_it(sd15: DiffusionEngine) -> None:
    steps: list[int] = []

    def cancelled(asked: GenerationRequest) -> bool:
        if asked.request_id == "leaves":
            steps.append(1)
            return len(steps) > 2  # asked before each step: leaves after two
        return False

    batch = [
        adapted("leaves", ("a.safetensors", 1.0), seed=1),
        adapted("stays", ("b.safetensors", 1.0), seed=2),
        adapted("plain", seed=3),
    ]
    gone, *rest = sd15.generate(batch, cancelled=cancelled)
    assert gone.error is not None and gone.error.code == "CANCELLED"
    for outcome, alone in zip(rest, batch[1:], strict=True):
        assert np.abs(pixels(outcome)[0] - pixels(sd15.generate([alone])[0])[0]).max() <= 1


def _safetensors_with(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(tensors)


def _bad_adapters(unet: Any) -> dict[str, tuple[bytes | None, str]]:
    """name -> (the file, or None for none at all; what the refusal must say)."""
    layer = attention_layers(unet, limit=1)[0]
    module = unet.get_submodule(layer)
    good = {
        f"unet.{layer}.lora_A.weight": torch.zeros(2, module.in_features),
        f"unet.{layer}.lora_B.weight": torch.zeros(module.out_features, 2),
    }
    return {
        "missing.safetensors": (None, "does not exist"),
        "pickled.bin": (pickle.dumps(good), "is not a safetensors file"),
        "torch.pt": (_torch_save(good), "is not a safetensors file"),
        "kohya.safetensors": (
            _safetensors_with(
                {
                    "lora_unet_down_blocks_0_attn1_to_q.lora_down.weight": good[
                        f"unet.{layer}.lora_A.weight"
                    ]
                }
            ),
            "kohya's format",
        ),
        "text.safetensors": (
            _safetensors_with({"text_encoder.layers.0.q_proj.lora_A.weight": torch.zeros(2, 4)}),
            "text encoder",
        ),
        "shape.safetensors": (
            _safetensors_with(
                {
                    f"unet.{layer}.lora_A.weight": torch.zeros(2, module.in_features + 1),
                    f"unet.{layer}.lora_B.weight": torch.zeros(module.out_features, 2),
                }
            ),
            f"layer {layer!r} is Linear({module.in_features}, {module.out_features})",
        ),
        "nowhere.safetensors": (
            _safetensors_with(
                {
                    "unet.no_such_block.to_q.lora_A.weight": torch.zeros(2, 4),
                    "unet.no_such_block.to_q.lora_B.weight": torch.zeros(4, 2),
                }
            ),
            "'no_such_block.to_q', which this model does not have",
        ),
        "conv.safetensors": (
            _safetensors_with(
                {
                    "unet.conv_in.lora_A.weight": torch.zeros(2, 4),
                    "unet.conv_in.lora_B.weight": torch.zeros(4, 2),
                }
            ),
            "a Conv2d: only Linear layers take adapters",
        ),
        "half.safetensors": (
            _safetensors_with({f"unet.{layer}.lora_A.weight": good[f"unet.{layer}.lora_A.weight"]}),
            "has no up (lora_B) weight",
        ),
        "int.safetensors": (
            _safetensors_with({k: v.to(torch.int32) for k, v in good.items()}),
            "is I32; adapters must be F16, BF16 or F32",
        ),
        "large.safetensors": (_safetensors_with(good) + b" " * 4096, "store.adapter_max_bytes="),
        "nan.safetensors": (
            _safetensors_with({**good, f"unet.{layer}.lora_B.weight": _with_nan(module)}),
            f"layer {layer!r} holds NaN or inf weights",
        ),
    }


def _with_nan(module: Any) -> torch.Tensor:
    up = torch.zeros(module.out_features, 2)
    up[0, 1] = math.nan
    return up


def _torch_save(tensors: dict[str, torch.Tensor]) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return buffer.getvalue()


def test_every_bad_adapter_fails_its_request_alone_naming_it(tiny_dir: Path) -> None:
    store = MemoryStore({})
    engine = adapter_engine(tiny_dir, store, max_bytes=4096)
    unet = engine.parts("tiny").denoiser
    store.objects[f"{STORE}/small.safetensors"] = lora_bytes(
        unet, attention_layers(unet)[:2], seed=3
    )
    bad = _bad_adapters(unet)
    for name, (data, _) in bad.items():
        if data is not None:
            store.objects[f"{STORE}/{name}"] = data
    batch = [adapted(f"bad{i}", (name, 1.0)) for i, name in enumerate(bad)]
    fine = adapted("fine", ("small.safetensors", 1.0), seed=9)
    *failed, ok = engine.generate([*batch, fine])
    for (name, (_, why)), outcome in zip(bad.items(), failed, strict=True):
        assert outcome.error is not None, name
        assert outcome.error.code == "INVALID_REQUEST" and not outcome.error.retryable
        assert str(outcome.error).startswith(f"adapters[0] '{STORE}/{name}' "), outcome.error
        assert why in str(outcome.error), (name, str(outcome.error))
    assert ok.ok and np.array_equal(pixels(ok)[0], pixels(engine.generate([fine])[0])[0])


def test_an_adapter_outside_the_allowed_prefixes_is_refused_unread(tiny_dir: Path) -> None:
    store = MemoryStore({})
    engine = adapter_engine(tiny_dir, store)
    store.objects["s3://elsewhere/a.safetensors"] = store.objects[f"{STORE}/a.safetensors"]
    asked = request("r", adapters=(Adapter("s3://elsewhere/a.safetensors"),))
    (outcome,) = engine.generate([asked])
    assert outcome.error is not None and outcome.error.code == "INVALID_REQUEST"
    assert "adapters[0] 's3://elsewhere/a.safetensors' is not allowed" in str(outcome.error)
    assert store.reads == []


def test_one_object_spelled_two_ways_is_read_and_cached_once(tiny_dir: Path) -> None:
    store = MemoryStore({})
    engine = adapter_engine(tiny_dir, store)
    loader = engine._inputs.adapter_loader
    assert loader is not None
    store.reads.clear()
    spellings = ("a.safetensors", "./a.safetensors", "x/../a.safetensors", "%61.safetensors")
    outcomes = engine.generate([adapted(str(i), (s, 1.0)) for i, s in enumerate(spellings)])
    assert all(o.ok for o in outcomes)
    assert store.reads == [f"{STORE}/a.safetensors"] and len(loader.cache) == 1


def test_an_unreachable_store_is_transient(tiny_dir: Path) -> None:
    store = MemoryStore({})
    engine = adapter_engine(tiny_dir, store)
    store.down = True
    with pytest.raises(StoreUnavailable):
        engine.generate([adapted("r", ("a.safetensors", 1.0))])


def test_each_adapter_is_read_once_and_the_least_recent_leaves_past_the_budget(
    tiny_dir: Path,
) -> None:
    from safetensors.torch import load

    store = MemoryStore({})
    engine = adapter_engine(tiny_dir, store)
    loader = engine._inputs.adapter_loader  # what the cache holds
    assert loader is not None
    a_file = load(store.objects[f"{STORE}/a.safetensors"])
    loader.cache.budget_bytes = sum(t.numel() * t.element_size() for t in a_file.values()) + 1
    store.reads.clear()
    engine.generate([adapted(str(i), ("a.safetensors", 1.0), seed=i) for i in range(3)])
    assert store.reads == [f"{STORE}/a.safetensors"]
    engine.generate([adapted("b", ("b.safetensors", 1.0))])  # a leaves: b fits the budget
    engine.generate([adapted("a", ("a.safetensors", 1.0))])
    assert store.reads == [f"{STORE}/{n}.safetensors" for n in "aba"]
    assert loader.cache.evictions == 2 and len(loader.cache) == 1
    registry = CollectorRegistry()
    registry.register(AdapterCollector(engine.adapter_stats))
    assert {
        name: registry.get_sample_value(f"streamgen_adapter_{name}")
        for name in ("loads_total", "cache_hits_total", "cache_evictions_total", "cache_bytes")
    } == {
        "loads_total": 3,
        "cache_hits_total": 2,
        "cache_evictions_total": 2,
        "cache_bytes": loader.cache.nbytes,
    }
    # No fast path is configured, so no batch with adapters gave one up.
    assert registry.get_sample_value("streamgen_adapter_eager_batches_total") == 0


def test_a_batch_with_adapters_that_skips_a_fast_path_is_counted_and_said_once_per_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from streamgen.engine.inputs import StoredInputs

    inputs = StoredInputs(None, None)
    with caplog.at_level("WARNING", logger="streamgen.engine.inputs"):
        inputs.ran_eagerly("tiny", [])  # nothing configured: nothing given up
        for _ in range(3):
            inputs.ran_eagerly("tiny", ["engine.cuda_graphs", "engine.aot_compile"])
        inputs.ran_eagerly("other", ["engine.compile"])
    assert inputs.adapter_stats().eager_batches == 4
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["model tiny", "model other"]
    assert "without engine.cuda_graphs, engine.aot_compile" in caplog.records[0].getMessage()


def test_adapters_on_fused_qkv_projections_give_the_unfused_images(
    tiny_dir: Path, sd15: DiffusionEngine, store: MemoryStore
) -> None:
    # engine.fuse_qkv drops to_q/to_k/to_v: each update lands in its slice of to_qkv (self-
    # attention) or to_kv (cross-attention, whose to_q stays).
    files = InitImageReader.from_settings(StoreSettings(url=STORE), store, max_bytes=1 << 24)
    settings = EngineSettings(models={"tiny": str(tiny_dir)}, fuse_qkv=True)
    fused = DiffusionEngine(settings, adapter_files=files)
    names = [name for name, _ in fused.parts("tiny").denoiser.named_modules()]
    assert any(n.endswith(".to_qkv") for n in names) and any(n.endswith(".to_kv") for n in names)
    assert not any(n.endswith((".to_k", ".to_v")) for n in names)
    mix = [
        adapted("a", ("a.safetensors", 1.0), seed=1),
        adapted("ab", ("a.safetensors", 0.5), ("b.safetensors", -1.0), seed=2),
        adapted("none", seed=3),
    ]
    for ours, theirs in zip(fused.generate(mix), sd15.generate(mix), strict=True):
        assert_same_images(ours, theirs)
