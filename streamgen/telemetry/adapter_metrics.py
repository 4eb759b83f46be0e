"""The engine's LoRA adapter figures, read on every scrape (``streamgen_adapter_*``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streamgen.engine.adapters import AdapterStats

__all__ = ["AdapterCollector"]


class AdapterCollector(Collector):
    def __init__(self, stats: Callable[[], AdapterStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self._stats()
        yield CounterMetricFamily(
            "streamgen_adapter_eager_batches",
            "Batches with LoRA adapters run eagerly although CUDA graphs, AOT packages or "
            "compile are configured (their hooks are Python)",
            value=s.eager_batches,
        )
        yield CounterMetricFamily(
            "streamgen_adapter_loads", "Adapter files read and checked", value=s.loads
        )
        yield CounterMetricFamily(
            "streamgen_adapter_cache_hits", "Adapters found loaded", value=s.hits
        )
        yield CounterMetricFamily(
            "streamgen_adapter_cache_evictions",
            "Adapters dropped past engine.adapter_cache_bytes",
            value=s.evictions,
        )
        yield GaugeMetricFamily(
            "streamgen_adapter_cache_bytes",
            "Bytes of the adapters kept loaded",
            value=s.cached_bytes,
        )
