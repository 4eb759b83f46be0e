"""Where a lone request's time goes, from the worker's own spans (benchmarks 2b and 4).

The light-load phase runs the worker with an SDK tracer provider that keeps its finished spans
in memory. Each request's spans are found by its trace (the ``process`` span and its children
``decode``, ``batch wait``, ``store``, ``publish``) and by the ``generate`` span linked to it;
together with the moment it was produced (``created_at``) and the moment a consumer of the
results topic read its result, they cut the request's wall time into consecutive segments:

==================  ==========================================================================
``kafka_in``        produced → the worker took the record (producer linger, broker, fetch)
``admit``           took the record → queued for the GPU (decode and validation)
``batch_wait``      queued → the engine call started (the batcher's ``max_wait_ms``)
``generate``        the engine call: text encoder, denoising, VAE decode, pixels to the host
``to_store``        the engine call returned → the output thread started storing
``store``           image encode (PNG) and the durable write
``to_publish``      stored → the result handed to the producer (result record built)
``kafka_out``       handed to the producer → read from the results topic (linger, broker, fetch)
==================  ==========================================================================

The segments add up to the whole (produced → read), so what the target measures is split
without a gap. Times are wall-clock seconds (span times are ``time.time_ns``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PARTS", "SEGMENTS", "RequestSplit", "median_parts", "median_split", "split_requests"]

SEGMENTS = (
    "kafka_in",
    "admit",
    "batch_wait",
    "generate",
    "to_store",
    "store",
    "to_publish",
    "kafka_out",
)

# The same segments in the four parts a light-load figure is quoted in: everything but the
# GPU's work before it, the GPU, storing the image (the output thread's pick-up, the encode,
# the durable write), publishing the result (building it, producer to results consumer).
PARTS = {
    "before_generation": ("kafka_in", "admit", "batch_wait"),
    "generation": ("generate",),
    "store_encode": ("to_store", "store"),
    "publish": ("to_publish", "kafka_out"),
}


@dataclass(frozen=True)
class RequestSplit:
    request_id: str
    seconds: dict[str, float]  # SEGMENTS → seconds; they sum to ``total``

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def split_requests(
    spans: Iterable[Any], marks: Mapping[str, tuple[float, float]]
) -> list[RequestSplit]:
    """One split per request of ``marks`` (request id → (produced, read), wall seconds) whose
    spans are all there; ``spans`` are finished SDK spans (``ReadableSpan``)."""
    by_trace: dict[int, dict[str, Any]] = {}
    process: dict[str, Any] = {}
    generate: dict[tuple[int, int], Any] = {}
    for span in spans:
        if span.name.startswith("process "):
            key = (span.attributes or {}).get("messaging.kafka.message.key")
            if key is not None:
                process[str(key)] = span
        elif span.name == "generate":
            for link in span.links:
                generate[(link.context.trace_id, link.context.span_id)] = span
        else:
            by_trace.setdefault(span.context.trace_id, {})[span.name] = span
    out = []
    for request_id, (produced, read) in marks.items():
        root = process.get(request_id)
        if root is None:
            continue
        children = by_trace.get(root.context.trace_id, {})
        batch = generate.get((root.context.trace_id, root.context.span_id))
        needed = ("batch wait", "store", "publish")
        if batch is None or any(name not in children for name in needed):
            continue
        wait, store, publish = (children[name] for name in needed)
        points = [
            produced,
            _s(root.start_time),
            _s(wait.start_time),
            _s(batch.start_time),
            _s(batch.end_time),
            _s(store.start_time),
            _s(store.end_time),
            _s(publish.start_time),
            read,
        ]
        seconds = {name: points[i + 1] - points[i] for i, name in enumerate(SEGMENTS)}
        out.append(RequestSplit(request_id, seconds))
    return out


def median_split(splits: Sequence[RequestSplit]) -> dict[str, float]:
    """Each segment's median in milliseconds, and the median total."""
    if not splits:
        return {}
    row = {
        f"{name}_ms": round(1000 * statistics.median(s.seconds[name] for s in splits), 2)
        for name in SEGMENTS
    }
    row["total_ms"] = round(1000 * statistics.median(s.total for s in splits), 2)
    return row


def median_parts(splits: Sequence[RequestSplit]) -> dict[str, float]:
    """Each of :data:`PARTS`' median in milliseconds (summed per request, then the median),
    what lies beyond generation, and the total."""
    if not splits:
        return {}

    def median_ms(per_request: Callable[[RequestSplit], float]) -> float:
        return round(1000 * statistics.median(per_request(s) for s in splits), 2)

    def part(names: tuple[str, ...]) -> Callable[[RequestSplit], float]:
        return lambda split: sum(split.seconds[n] for n in names)

    row = {f"{name}_ms": median_ms(part(names)) for name, names in PARTS.items()}
    row["beyond_generation_ms"] = median_ms(lambda s: s.total - s.seconds["generate"])
    row["total_ms"] = median_ms(lambda s: s.total)
    return row


def _s(ns: int | None) -> float:
    if ns is None:
        raise ValueError("an unfinished span")
    return ns / 1e9
