"""`streamgen lag` for a share group: refused with the command that can answer, never a report
that would show the whole log as lag (a share group commits no offsets)."""

from __future__ import annotations

from click.testing import CliRunner

from streamgen.cli import main


def test_lag_of_a_share_group_names_share_group_command_instead() -> None:
    result = CliRunner().invoke(
        main,
        ["lag", "--group", "queue", "--bootstrap-servers", "127.0.0.1:1"],
        env={"STREAMGEN_WORKER_MODE": "share"},
    )
    assert result.exit_code == 1, result.output
    assert "'queue' is a share group" in result.output
    assert "ShareGroupCommand --bootstrap-server 127.0.0.1:1 --describe --group queue" in (
        " ".join(result.output.split())
    )
