"""GPU memory and utilisation as Prometheus series, read at scrape time.

Sources, each optional: ``torch.cuda`` (memory this process allocated and reserved) when torch
is already imported by the worker, and NVML through ``pynvml`` (device utilisation, device
memory used and total) when it is installed. Without CUDA the collector yields its metric
families with no samples, so the series names stay discoverable (dashboards, tests) and a
scrape costs nothing.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["GPU_SERIES", "GpuCollector", "NvmlDevice", "visible_nvml_devices"]

log = logging.getLogger(__name__)

MEMORY = "streamgen_gpu_memory_bytes"
MEMORY_TOTAL = "streamgen_gpu_memory_total_bytes"
UTILISATION = "streamgen_gpu_utilization_ratio"
GPU_SERIES = (MEMORY, MEMORY_TOTAL, UTILISATION)


@dataclass(frozen=True)
class NvmlDevice:
    """How NVML should find the device that this process sees as ``cuda:<label>``."""

    label: str  # the CUDA index inside this process ("0", "1", …)
    index: int | None = None  # NVML index (NVML ignores CUDA_VISIBLE_DEVICES)
    uuid: str | None = None  # "GPU-…" or "MIG-…"


def visible_nvml_devices(env: Mapping[str, str], device_count: int) -> list[NvmlDevice]:
    """Map this process's CUDA devices to NVML devices through ``CUDA_VISIBLE_DEVICES``.

    A fleet child pinned to GPU 3 sees it as ``cuda:0``, but NVML still calls it 3; reading
    NVML index 0 would report another worker's GPU.
    """
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [NvmlDevice(label=str(i), index=i) for i in range(device_count)]
    devices: list[NvmlDevice] = []
    for label, entry in enumerate(e.strip() for e in visible.split(",") if e.strip()):
        if label >= device_count:
            break
        if entry.isdigit():
            devices.append(NvmlDevice(label=str(label), index=int(entry)))
        else:
            devices.append(NvmlDevice(label=str(label), uuid=entry))
    return devices


class GpuCollector(Collector):
    """A custom collector: Prometheus calls :meth:`collect` on every scrape."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self._nvml: Any = None
        self._nvml_failed = False

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        memory, total, utilisation = self._families()
        torch = sys.modules.get("torch")  # never import torch just to scrape: `lag` stays light
        cuda = getattr(torch, "cuda", None)
        if cuda is not None and cuda.is_available():
            count = int(cuda.device_count())
            for i in range(count):
                memory.add_metric([str(i), "allocated"], float(cuda.memory_allocated(i)))
                memory.add_metric([str(i), "reserved"], float(cuda.memory_reserved(i)))
            self._add_nvml(visible_nvml_devices(self._env, count), memory, total, utilisation)
        yield from (memory, total, utilisation)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                MEMORY,
                "GPU memory: allocated/reserved by this process (torch), used on the device (NVML)",
                labels=["device", "kind"],
            ),
            GaugeMetricFamily(MEMORY_TOTAL, "GPU memory of the device (NVML)", labels=["device"]),
            GaugeMetricFamily(
                UTILISATION,
                "Fraction of the last sample period the GPU was busy, 0..1 (NVML)",
                labels=["device"],
            ),
        )

    def _add_nvml(
        self,
        devices: list[NvmlDevice],
        memory: GaugeMetricFamily,
        total: GaugeMetricFamily,
        utilisation: GaugeMetricFamily,
    ) -> None:
        nvml = self._load_nvml()
        if nvml is None:
            return
        for device in devices:
            try:
                if device.uuid is not None:
                    handle = nvml.nvmlDeviceGetHandleByUUID(device.uuid)
                else:
                    handle = nvml.nvmlDeviceGetHandleByIndex(device.index)
                info = nvml.nvmlDeviceGetMemoryInfo(handle)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            except Exception as exc:  # NVML errors are one class with many codes
                log.debug("NVML read of cuda:%s failed: %s", device.label, exc)
                continue
            memory.add_metric([device.label, "used"], float(info.used))
            total.add_metric([device.label], float(info.total))
            utilisation.add_metric([device.label], float(rates.gpu) / 100.0)

    def _load_nvml(self) -> Any:
        if self._nvml is not None or self._nvml_failed:
            return self._nvml
        try:
            # optional (the nvidia-ml-py package), hence imported by name
            pynvml = importlib.import_module("pynvml")
            pynvml.nvmlInit()
        except Exception as exc:
            self._nvml_failed = True
            log.info("GPU utilisation metrics off: NVML unavailable (%s)", exc)
            return None
        self._nvml = pynvml
        return pynvml
