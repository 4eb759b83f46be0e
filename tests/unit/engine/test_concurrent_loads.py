"""Models loaded from several threads at once (workers run as threads by tests, benchmarks and
library users): each load is whole, and nothing is left on the meta device afterwards. With
accelerate installed diffusers builds modules inside accelerate's process-wide patch of
``register_parameter``; overlapping loads left it in place and every later module on meta."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from streamgen.engine.loading import load_pipeline

LOADS = 3


def test_loads_from_threads_take_turns_and_leave_nothing_on_meta(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import diffusers

    stock = diffusers.DiffusionPipeline.from_pretrained.__func__  # type: ignore[attr-defined]
    inside, most = 0, 0
    count = threading.Lock()

    def watched(cls: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal inside, most
        with count:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.2)  # a window in which another thread's load would overlap this one
            return stock(cls, *args, **kwargs)
        finally:
            with count:
                inside -= 1

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", classmethod(watched))
    loaded: list[Any] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            loaded.append(load_pipeline("tiny", str(tiny_dir), "auto", torch.device("cpu")))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(LOADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and len(loaded) == LOADS
    assert most == 1, f"{most} loads overlapped"
    for parts in loaded:
        devices = {p.device.type for m in parts.modules for p in m.parameters()}
        assert devices == {"cpu"}, devices
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"
