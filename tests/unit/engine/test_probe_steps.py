"""Probing the batch limit runs a few steps per size, not the shape's own: memory does not grow
with the steps, time does (FLUX.1 [dev]'s 28 steps at 1024x1024 probed for minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamgen.engine.engine import WARM_UP_STEPS, DiffusionEngine
from streamgen.engine.memory import CPU_MAX_BATCH
from streamgen.engine.types import Shape
from streamgen.settings import EngineSettings


def test_the_probe_runs_few_steps_per_size(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = DiffusionEngine(EngineSettings(models={"tiny": str(tiny_dir)}))
    denoiser = engine.parts("tiny").denoiser
    calls: list[int] = []
    forward = denoiser.forward

    def counted(sample: torch.Tensor, *args: object, **kwargs: object) -> object:
        calls.append(sample.shape[0])
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(denoiser, "forward", counted)
    limit = engine.max_batch_size(Shape("tiny", "txt2img", 64, 64, 30, "euler"))
    assert limit == CPU_MAX_BATCH
    sizes = [1, 2, 4, 8]  # powers of two up to the CPU's cap; classifier-free guidance doubles
    assert calls == [2 * n for n in sizes for _ in range(WARM_UP_STEPS)]
