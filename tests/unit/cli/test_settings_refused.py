"""A settings mistake ends a command with exit 4 and one line naming the setting."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streamgen.cli import main
from streamgen.exit_codes import EXIT_CONFIG


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--set", "worker.max_inflight=3"], {}, "setting 'worker.max_inflight': unknown setting"),
        (["--set", "worker.max_in_flight=0"], {}, "setting 'worker.max_in_flight': must be > 0"),
        (["--set", "worker.max_in_flight"], {}, "--set"),
        (["--max-in-flight", "abc"], {}, "'--max-in-flight': 'abc' is not a valid integer"),
        (["--no-such-flag"], {}, "No such option '--no-such-flag'"),
        ([], {"STREAMGEN_WORKER_MAX_INFLIGHT": "3"}, "'STREAMGEN_WORKER_MAX_INFLIGHT'"),
        ([], {"STREAMGEN_WORKER_MAX_IN_FLIGHT": "x"}, "'worker.max_in_flight': expected int"),
        ([], {}, "setting 'engine.models': no model configured"),
        (["--model", "tiny"], {}, "setting 'engine.models' (--model)"),
    ],
)
def test_a_worker_settings_mistake_exits_4_in_one_line(
    args: list[str], env: dict[str, str], named: str
) -> None:
    result = CliRunner().invoke(main, ["worker", *args], env=env)
    assert result.exit_code == EXIT_CONFIG, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("streamgen: cannot start: "), line
    assert named in line, line


def test_help_is_not_a_mistake() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0
    assert "Exit codes" in result.output
