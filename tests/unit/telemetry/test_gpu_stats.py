from __future__ import annotations

import sys
import types

import pytest

from streamgen.telemetry.gpu_stats import GPU_SERIES, GpuCollector, NvmlDevice, visible_nvml_devices


def test_without_pinning_cuda_index_is_nvml_index() -> None:
    assert visible_nvml_devices({}, 2) == [
        NvmlDevice(label="0", index=0),
        NvmlDevice(label="1", index=1),
    ]


def test_a_pinned_child_reads_the_physical_gpu() -> None:
    assert visible_nvml_devices({"CUDA_VISIBLE_DEVICES": "3"}, 1) == [
        NvmlDevice(label="0", index=3)
    ]
    assert visible_nvml_devices({"CUDA_VISIBLE_DEVICES": "2, GPU-abc"}, 2) == [
        NvmlDevice(label="0", index=2),
        NvmlDevice(label="1", uuid="GPU-abc"),
    ]


def test_more_visible_entries_than_devices_are_ignored() -> None:
    assert visible_nvml_devices({"CUDA_VISIBLE_DEVICES": "0,1,2"}, 1) == [
        NvmlDevice(label="0", index=0)
    ]


def test_without_cuda_the_families_exist_but_are_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    families = list(GpuCollector(env={}).collect())
    assert tuple(f.name for f in families) == GPU_SERIES
    assert all(not f.samples for f in families)


def test_torch_memory_is_reported_per_visible_device(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 2,
        memory_allocated=lambda i: 100 * (i + 1),
        memory_reserved=lambda i: 1000 * (i + 1),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML absent: torch numbers only
    memory = next(iter(GpuCollector(env={}).collect()))
    samples = {(s.labels["device"], s.labels["kind"]): s.value for s in memory.samples}
    assert samples == {
        ("0", "allocated"): 100,
        ("0", "reserved"): 1000,
        ("1", "allocated"): 200,
        ("1", "reserved"): 2000,
    }
