"""``engine.aot_compile``: packages keyed on what their code depends on, loaded on a second
start instead of compiled, the same images as eager, and eager whenever compiling fails."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from streamgen.engine.aot import AotModules, open_package, package_key
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.graphs import BucketGraphs
from streamgen.engine.knobs import check_knobs
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings
from tests.unit.engine.conftest import assert_batched_equals_alone, assert_same_images, request

ARCH = {"block_out_channels": [32, 64], "cross_attention_dim": 32}
INPUTS = {"latents": (4, 8, 8), "dtype": "torch.float32"}


def test_package_key_is_stable_and_names_the_module() -> None:
    key = package_key("unet", ARCH, INPUTS, "torch2.15-cpu|knobs")
    assert key == package_key("unet", dict(ARCH), dict(INPUTS), "torch2.15-cpu|knobs")
    assert key.startswith("unet-") and key.endswith(".pt2")


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "vae"},
        {"architecture": {**ARCH, "cross_attention_dim": 64}},
        {"inputs": {**INPUTS, "latents": (4, 16, 16)}},
        {"inputs": {**INPUTS, "dtype": "torch.float16"}},
        {"label": "torch2.16-cpu|knobs"},
        {"label": "torch2.15-NVIDIA H200|knobs"},
        {"label": "torch2.15-cpu|fuse_qkv=True"},
    ],
)
def test_package_key_changes_with_anything_the_code_depends_on(change: dict[str, object]) -> None:
    base: dict[str, object] = {
        "kind": "unet",
        "architecture": ARCH,
        "inputs": INPUTS,
        "label": "torch2.15-cpu|knobs",
    }
    changed = {**base, **change}
    assert package_key(**base) != package_key(**changed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"compile": True, "compile_cache_dir": "/tmp/x"}, "not both"),
        ({"cpu_offload": True, "compile_cache_dir": "/tmp/x"}, "move between devices"),
        ({}, "needs engine.compile_cache_dir"),
    ],
)
def test_aot_compile_refuses_what_cannot_work(knobs: dict[str, object], message: str) -> None:
    settings = EngineSettings(models={"m": "x"}, aot_compile=True, **knobs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message) as raised:
        check_knobs(settings, torch.device("cpu"))
    assert raised.value.setting == "engine.aot_compile"


def _engine(tiny_dir: Path, cache: Path | None) -> DiffusionEngine:
    return DiffusionEngine(
        EngineSettings(
            models={"tiny": str(tiny_dir)},
            max_batch_size=4,
            aot_compile=cache is not None,
            compile_cache_dir=str(cache or ""),
        )
    )


def _aot(engine: DiffusionEngine) -> AotModules:
    return engine._aot["tiny"]


def test_a_failed_compile_runs_eagerly_with_the_same_images(
    tiny_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("export failed")

    monkeypatch.setattr(AotModules, "_write_package", broken)
    requests = [request("a", seed=3), request("b", seed=4)]
    with caplog.at_level(logging.ERROR, logger="streamgen.engine.aot"):
        compiled = _engine(tiny_dir, tmp_path).generate(requests)
    eager = _engine(tiny_dir, None).generate(requests)
    for a, b in zip(compiled, eager, strict=True):
        assert_same_images(a, b)
    assert "runs eagerly" in caplog.text
    assert not list((tmp_path / "aot").glob("*.pt2"))


def test_a_torn_package_is_not_loaded(
    tiny_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    written: list[Path] = []
    monkeypatch.setattr(AotModules, "_write_package", lambda self, path, *a: written.append(path))
    engine = _engine(tiny_dir, tmp_path)
    engine.generate([request("a")])  # learns the package names (nothing is written)
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a zip file")
    with caplog.at_level(logging.WARNING, logger="streamgen.engine.aot"):
        again = _engine(tiny_dir, tmp_path)
        outcome = again.generate([request("a")])[0]
    assert outcome.ok
    assert len(written) == 4 and _aot(again).loaded == 0
    assert "cannot be loaded" in caplog.text


def test_a_loader_with_other_arguments_falls_back_to_aoti_load_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def other_signature(*args: object) -> None:
        raise TypeError("incompatible constructor arguments")

    opened: list[tuple[str, bool]] = []
    monkeypatch.setattr(torch._C._aoti, "AOTIModelPackageLoader", other_signature)
    monkeypatch.setattr(
        torch._inductor,
        "aoti_load_package",
        lambda path, run_single_threaded, device_index: (
            opened.append((path, run_single_threaded, device_index)) or "runner"
        ),
    )
    assert open_package("/x/unet.pt2", 1) == "runner"
    assert opened == [("/x/unet.pt2", True, 1)]


@pytest.mark.slow
def test_second_start_loads_what_the_first_compiled(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real torch.export + AOTInductor on the CPU (about two minutes on two cores)."""
    requests = [request("a", seed=3), request("b", seed=4, guidance_scale=3.0), request("c")]
    eager = _engine(tiny_dir, None)
    first = _engine(tiny_dir, tmp_path)
    batched = first.generate(requests)
    assert (_aot(first).compiled, _aot(first).loaded) == (2, 0)  # UNet step and VAE decoder

    def probe(device: str) -> None:  # what cost a fresh H200 worker 17-47 s per start
        raise AssertionError("the CPU's vector ISAs were probed while loading a package")

    monkeypatch.setattr(torch._inductor.codecache, "get_device_information", probe)
    second = _engine(tiny_dir, tmp_path)
    alone = [second.generate([r])[0] for r in requests]  # batch 1: the same dynamic package
    assert (_aot(second).compiled, _aot(second).loaded) == (0, 2)
    for a, b, c in zip(eager.generate(requests), batched, alone, strict=True):
        assert_same_images(a, b)
        assert_same_images(a, c)
    # engine.cuda_graphs captures the packages: here their padded path, without a capture.
    aot = _aot(second)
    graphs = BucketGraphs(
        second.parts("tiny"), second.device, capture=False, predict=aot.guided, decode=aot.decode
    )
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(
            graphs.decoder((1, 2, 4))(latents), aot.decode(latents), atol=1e-4, rtol=0
        )
    assert graphs.count == 1 and _aot(second).compiled == 0


@pytest.mark.slow
def test_sdxl_packages_take_the_added_conditioning(tiny_sdxl_dir: Path, tmp_path: Path) -> None:
    """SDXL's UNet step also takes the pooled text embeddings and the size ids: the package
    is exported with them, and batched == alone == eager (about a minute on two cores)."""
    requests = [request("a", seed=3), request("b", seed=4, guidance_scale=3.0), request("c")]
    compiled = _engine(tiny_sdxl_dir, tmp_path)
    batched = assert_batched_equals_alone(compiled, requests)
    assert compiled.aot_packages() == {"compiled": 2, "loaded": 0}
    for a, b in zip(_engine(tiny_sdxl_dir, None).generate(requests), batched, strict=True):
        assert_same_images(a, b)
