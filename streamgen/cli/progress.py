"""A progress bar on a terminal, and nothing elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

__all__ = ["progress"]


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield ``report(done, total)``, drawing click's bar on stderr when it is a terminal.

    Elsewhere (a pipe, a log file, CI) it does nothing: click would print the label alone on a
    line, which reads like output (``results``, ``dead letters``) and says nothing.
    """
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    with click.progressbar(length=0, label=label, file=sys.stderr) as bar:

        def report(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        yield report
