"""What happened to a submitted batch: counts, failure codes, latency percentiles. Pure."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamgen.contracts.result import GenerationResult

__all__ = ["Summary", "percentile", "summarize"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty sequence: always a real sample."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q={q} not in [0, 100]")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    submitted: int
    succeeded: list[str]
    failed: dict[str, str]  # request_id -> "CODE: message"
    missing: list[str]
    latencies_s: list[float] = field(repr=False)
    images: dict[str, list[str]] = field(repr=False)  # request_id -> image URIs

    @property
    def failure_codes(self) -> Counter[str]:
        return Counter(reason.partition(":")[0] for reason in self.failed.values())

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies_s, 50) if self.latencies_s else None

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies_s, 95) if self.latencies_s else None

    def lines(self) -> list[str]:
        """The human summary, one line per fact, failures and missing ids named."""
        out = [f"submitted: {self.submitted}", f"succeeded: {len(self.succeeded)}"]
        out.extend(f"  {rid}: {uri}" for rid in self.succeeded for uri in self.images.get(rid, []))
        codes = ", ".join(f"{code} x{n}" for code, n in sorted(self.failure_codes.items()))
        out.append(f"failed: {len(self.failed)}" + (f" ({codes})" if codes else ""))
        out.extend(f"  {rid}: {reason}" for rid, reason in sorted(self.failed.items()))
        if self.p50 is not None and self.p95 is not None:
            out.append(
                f"latency (created -> finished): p50 {self.p50:.3f}s  p95 {self.p95:.3f}s  "
                f"over {len(self.latencies_s)}"
            )
        if self.missing:
            out.append(f"missing (no result before the timeout): {len(self.missing)}")
            out.extend(f"  {rid}" for rid in self.missing)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failure_codes": dict(self.failure_codes),
            "missing": self.missing,
            "latency_p50_s": self.p50,
            "latency_p95_s": self.p95,
            "images": self.images,
        }


def summarize(
    request_ids: Sequence[str],
    results: Mapping[str, GenerationResult],
    created_at: Mapping[str, datetime],
) -> Summary:
    """Summarize the results of ``request_ids``, in submission order.

    Latency runs from the result's ``timings.created_at`` (the request's own, as the worker
    saw it), falling back to when this producer created the request, to ``finished_at``.
    """
    succeeded, missing, latencies = [], [], []
    failed: dict[str, str] = {}
    images: dict[str, list[str]] = {}
    for rid in request_ids:
        result = results.get(rid)
        if result is None:
            missing.append(rid)
            continue
        if result.status == "SUCCEEDED":
            succeeded.append(rid)
            images[rid] = [image.uri for image in sorted(result.images, key=lambda i: i.index)]
        else:
            error = result.error
            failed[rid] = f"{error.code}: {error.message}" if error else "UNKNOWN: no error given"
        start = result.timings.created_at or created_at.get(rid)
        end = result.timings.finished_at
        if start is not None and end is not None:
            latencies.append((end - start).total_seconds())
    return Summary(
        submitted=len(request_ids),
        succeeded=succeeded,
        failed=failed,
        missing=missing,
        latencies_s=latencies,
        images=images,
    )
