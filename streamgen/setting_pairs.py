"""``NAME=VALUE`` list settings (``topics.lanes``, ``worker.tenants``), read one way.

Text (``a=1,b=2``, commas or new lines), a TOML list of such strings, or a TOML table
(``{a = 1, b = 2}``, which keeps its order): each gives the same ordered pairs, the values
still raw for the setting's own checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamgen.errors import ConfigError

__all__ = ["named_pairs"]


def named_pairs(setting: str, raw: Any, form: str) -> list[tuple[str, Any]]:
    """The ``(name, raw value)`` pairs of ``raw``; ConfigError naming ``setting`` and the
    expected ``form`` (e.g. ``NAME=WEIGHT``) for an item without '='."""
    if isinstance(raw, Mapping):
        return [(str(k), v) for k, v in raw.items()]
    items = raw if isinstance(raw, list | tuple) else str(raw).replace("\n", ",").split(",")
    pairs = []
    for item in (str(item).strip() for item in items):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(setting, f"expected {form}, got {item!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs
