"""engine.compile_cache_dir: a checked directory; artifacts loaded before compiling, saved after
warm-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from streamgen.engine import compile_cache
from streamgen.engine.compile_cache import CompileCache
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.types import Shape
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings


class FakeCompiler:
    """torch.compiler's save/load of cache artifacts, recording the calls in order."""

    def __init__(self, artifacts: bytes = b"compiled kernels", *, broken: bool = False) -> None:
        self.artifacts = artifacts
        self.broken = broken
        self.calls: list[tuple[str, bytes]] = []

    def save_cache_artifacts(self) -> tuple[bytes, Any] | None:
        self.calls.append(("save", self.artifacts))
        return (self.artifacts, None) if self.artifacts else None

    def load_cache_artifacts(self, serialized_artifacts: bytes) -> Any:
        self.calls.append(("load", serialized_artifacts))
        if self.broken:
            raise RuntimeError("not a cache")
        return None


def test_the_directory_is_created(tmp_path: Path) -> None:
    cache = CompileCache(str(tmp_path / "a" / "b"), label="torch2.11 NVIDIA H200")
    assert cache.path.is_dir()
    assert cache.artifacts.parent == cache.path and " " not in cache.artifacts.name
    assert not any(p.name.startswith(".probe") for p in cache.path.iterdir())


@pytest.mark.parametrize("below", ["file", "file/cache"])
def test_a_path_that_cannot_be_a_writable_directory_names_the_setting(
    tmp_path: Path, below: str
) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError) as caught:
        CompileCache(str(tmp_path / below), label="x")
    assert caught.value.setting == "engine.compile_cache_dir"


def test_configure_points_inductor_and_triton_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    cache = CompileCache(str(tmp_path), label="x")
    cache.configure()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "triton")


def test_artifacts_round_trip_and_a_bad_file_costs_only_a_cold_compile(tmp_path: Path) -> None:
    cache = CompileCache(str(tmp_path), label="x")
    compiler = FakeCompiler()
    assert not cache.load(compiler)  # nothing saved yet
    assert cache.save(compiler) and cache.artifacts.read_bytes() == b"compiled kernels"
    assert cache.load(compiler)
    assert compiler.calls == [("save", b"compiled kernels"), ("load", b"compiled kernels")]
    assert not cache.load(FakeCompiler(broken=True))
    assert not cache.save(FakeCompiler(b""))  # nothing compiled: the old file stays
    assert cache.artifacts.read_bytes() == b"compiled kernels"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".artifacts")]


def test_the_engine_loads_before_loading_models_and_saves_after_warm_up(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiler = FakeCompiler()
    monkeypatch.setattr(compile_cache, "_torch_compiler", lambda: compiler)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # restored after the test
    monkeypatch.setenv("TRITON_CACHE_DIR", "")
    directory = tmp_path / "cache"
    directory.mkdir()
    (directory / "artifacts-torch").write_bytes(b"")  # an unrelated file is left alone
    settings = EngineSettings(models={"tiny": str(tiny_dir)}, compile_cache_dir=str(directory))
    first = DiffusionEngine(settings)
    assert compiler.calls == []  # nothing saved yet, nothing to load
    first.warm_up([Shape("tiny", "txt2img", 64, 64, 3, "dpmpp_2m")])
    assert compiler.calls == [("save", b"compiled kernels")]
    DiffusionEngine(
        EngineSettings(models={"tiny": str(tiny_dir)}, compile_cache_dir=str(directory))
    )
    assert compiler.calls[-1] == ("load", b"compiled kernels")
