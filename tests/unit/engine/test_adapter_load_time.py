"""An adapter's first use is timed stage by stage (store read, parse, copy to the device), on
the adapter and in the log line that says it was loaded."""

from __future__ import annotations

import logging

import pytest
import torch

from streamgen.contracts.request import Adapter, GenerationRequest
from streamgen.engine.adapters import AdapterLoader, AdapterLoadTime
from streamgen.settings import StoreSettings
from streamgen.store.init_images import InitImageReader
from tests.support.lora import lora_bytes
from tests.support.memory_store import MemoryStore

URI = "s3://adapters/lora/a.safetensors"


def test_the_load_is_timed_from_read_to_device(caplog: pytest.LogCaptureFixture) -> None:
    denoiser = torch.nn.ModuleDict({"to_q": torch.nn.Linear(8, 8), "to_k": torch.nn.Linear(8, 4)})
    store = MemoryStore({URI: lora_bytes(denoiser, ["to_q", "to_k"], seed=1)})
    files = InitImageReader.from_settings(StoreSettings(url="s3://adapters/lora"), store)
    # Before the read, after it, after the parse, after the copy.
    ticks = iter([10.0, 11.0, 13.0, 16.0])
    loader = AdapterLoader(files, cache_bytes=1 << 20, device=torch.device("cpu"),
                           clock=lambda: next(ticks))  # fmt: skip
    request = GenerationRequest(request_id="r", prompt="p", adapters=(Adapter(URI),))
    with caplog.at_level(logging.INFO, logger="streamgen.engine.adapters.loader"):
        (used,) = loader.resolve(request, "tiny", denoiser, torch.float32)
    assert used.adapter.load_time == AdapterLoadTime(fetch_s=1.0, parse_s=2.0, copy_s=3.0)
    assert used.adapter.load_time.total_s == 6.0
    assert "in 6.000 s: read 1.000 s, parsed 2.000 s, copied to the device 3.000 s" in caplog.text
    # A second use is the cache's: no new load, so no clock read (an exhausted clock would raise).
    (again,) = loader.resolve(request, "tiny", denoiser, torch.float32)
    assert again.adapter is used.adapter
