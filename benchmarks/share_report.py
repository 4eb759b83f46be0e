"""The arithmetic of the share-group benchmark (issue 27), apart from the broker: what a run's
read-back results say (lost, duplicated, throughput, latency) and the ratios between runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from benchmarks.latency import percentile

__all__ = ["delivery_check", "latency_summary", "speedups", "throughput"]


def delivery_check(
    sent: Iterable[str], read: Mapping[str, Sequence[float]], status: Mapping[str, str]
) -> dict[str, int]:
    """How many requests sent had no result read back (lost), how many have a result that is
    not SUCCEEDED (failed: dead-lettered, e.g. past the delivery limit, never generated), how
    many results were read more than once (duplicated: a redo, allowed by at-least-once), and
    results for requests not sent by this run (foreign: a mixed-up topic).
    ``status``: each request's last result's status."""
    sent_ids = set(sent)
    return {
        "sent": len(sent_ids),
        "read": sum(len(times) for times in read.values()),
        "lost": len(sent_ids - read.keys()),
        "failed": sum(1 for i in sent_ids & read.keys() if status.get(i) != "SUCCEEDED"),
        "duplicated": sum(1 for times in read.values() if len(times) > 1),
        "foreign": len(read.keys() - sent_ids),
    }


def throughput(first_read: Sequence[float], published_at: float) -> dict[str, float]:
    """Requests per second from the moment publishing began to the last result read: every
    result over the whole window, pipeline filling included. (Counting from the first result
    read would leave out that result's batch-mates, read at the same instant, and overstate
    a short run: 16 results in batches of 4 every 0.5 s read as 10/s, not 8/s.)
    ``first_read``: each request's first result's wall clock."""
    if not first_read:
        raise ValueError("throughput of no results")
    seconds = max(first_read) - published_at
    if seconds <= 0:
        raise ValueError(f"the last result read {seconds:.3f} s after publishing began")
    return {
        "results": len(first_read),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(first_read) / seconds, 3),
    }


def speedups(rates: Mapping[int, float]) -> dict[int, float]:
    """Each worker count's throughput over the smallest count's (its speed-up)."""
    if not rates:
        return {}
    base = rates[min(rates)]
    if base <= 0:
        raise ValueError(f"the baseline throughput is {base}: no speed-up to compute")
    return {workers: round(rate / base, 3) for workers, rate in sorted(rates.items())}


def latency_summary(latencies: Sequence[float]) -> dict[str, Any]:
    """p50, p95, p99 and max (nearest rank), in seconds, of the latencies given."""
    return {
        "count": len(latencies),
        "p50": round(percentile(latencies, 50), 3),
        "p95": round(percentile(latencies, 95), 3),
        "p99": round(percentile(latencies, 99), 3),
        "max": round(max(latencies), 3),
    }
