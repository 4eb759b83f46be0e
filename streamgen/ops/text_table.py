"""Text tables for a terminal: what ``streamgen lag`` and ``streamgen replay --dry-run`` print."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["text_table"]


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the header first) in columns as wide as their widest cell, two spaces apart,
    no trailing spaces, like ``kafka-consumer-groups --describe``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
