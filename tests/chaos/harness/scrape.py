"""A worker's own /metrics, read from outside: what a scenario asks a worker about itself (the
records it sets aside, the round it holds, what became of its acknowledgements)."""

from __future__ import annotations

import re
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["gauge", "scrape", "total"]


def _text(port: int, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            return str(r.read().decode())
    except OSError:
        return None


def gauge(port: int, name: str, timeout: float = 2.0) -> float | None:
    """One unlabelled sample, found in the text without parsing the rest: fast enough to act
    on at once (a scenario freezes a worker the moment it holds a round)."""
    text = _text(port, timeout)
    found = re.search(rf"^{re.escape(name)} (\S+)$", text or "", re.MULTILINE)
    return float(found.group(1)) if found else None


def scrape(port: int, timeout: float = 2.0) -> dict[str, float] | None:
    """Every sample the worker on ``port`` exports, keyed ``name`` or ``name{label=value,...}``
    (labels sorted); None when it does not answer (not serving yet, frozen, or dead)."""
    text = _text(port, timeout)
    if text is None:
        return None
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def total(samples: dict[str, float], name: str) -> float:
    """The sum of ``name``'s samples over all their labels (0 when it has none)."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))
