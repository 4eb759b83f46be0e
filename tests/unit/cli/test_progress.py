"""Progress bars draw on a terminal and print nothing elsewhere (no lone label line)."""

from __future__ import annotations

import io

import pytest

from streamgen.cli.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_is_printed_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress("results") as report:
        report(1, 2)
        report(2, 2)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_the_bar_and_its_label_are_drawn_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress("results") as report:
        report(1, 2)
        report(2, 2)
    assert "results" in terminal.getvalue()
    assert "100%" in terminal.getvalue()
