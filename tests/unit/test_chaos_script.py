"""scripts/chaos refuses a --scenarios number that names no scenario; its highest number must
follow the scenarios in tests/chaos, or a new scenario could not be selected by number."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_chaos_script_knows_the_highest_scenario_number() -> None:
    script = (ROOT / "scripts" / "chaos").read_text()
    [declared] = re.findall(r"^last_scenario=(\d+)$", script, re.MULTILINE)
    numbers = {
        int(n)
        for path in (ROOT / "tests" / "chaos").glob("test_*.py")
        for n in re.findall(r"^def test_scenario_(\d+)_", path.read_text(), re.MULTILINE)
    }
    assert numbers == set(range(1, max(numbers) + 1)), f"scenario numbers with gaps: {numbers}"
    assert int(declared) == max(numbers)
