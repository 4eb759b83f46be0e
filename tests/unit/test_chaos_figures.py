"""The chaos figures' table (tests/chaos/harness/figures.py): per-tenant counts add up across
runs of a scenario, and the column appears only when some run named tenants."""

from __future__ import annotations

from tests.chaos.harness.figures import RunFigures, summarise


def run(scenario: str, tenants: dict[str, list[int]]) -> RunFigures:
    requests = sum(row[0] for row in tenants.values())
    return RunFigures(scenario, requests, 0, 0, 0, 0, 2, [1.0], tenants=tenants)


def test_per_tenant_counts_add_up_over_a_scenarios_runs() -> None:
    table = summarise(
        [
            run("16 caps", {"flood": [30, 0, 2], "small": [10, 0, 0]}),
            run("16 caps", {"flood": [25, 1, 3], "small": [9, 0, 1]}),
            run("1 kill -9", {}),
        ]
    )
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    assert "per tenant: requests / lost / duplicates" in rows["scenario"]
    assert rows["16 caps"].endswith(" flood 55 / 1 / 5, small 19 / 0 / 1 |")
    assert rows["1 kill -9"].endswith(" - |")


def test_no_tenant_column_without_tenants() -> None:
    assert "per tenant" not in summarise([run("1 kill -9", {})])


def bounded(duplicates: int, bound: int, held: list[int], reasons: dict[str, int]) -> RunFigures:
    return RunFigures(
        "share hang", 40, 0, duplicates, 0, sum(reasons.values()), 1, [20.0],
        duplicate_bound=bound, held_at_faults=held, dead_letter_reasons=reasons,
    )  # fmt: skip


def test_share_columns_show_the_worst_run_against_its_bound_and_reasons_add_up() -> None:
    table = summarise(
        [
            bounded(2, 3, [3], {}),
            bounded(1, 5, [5], {"DELIVERY_LIMIT_EXCEEDED": 1}),
            bounded(0, 1, [1], {"DELIVERY_LIMIT_EXCEEDED": 2, "VALIDATION": 1}),
            run("1 kill -9", {}),
        ]
    )
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    assert "duplicates: all, most in a run / its bound" in rows["scenario"]
    assert "dead letters by reason" in rows["scenario"]
    assert rows["share hang"].endswith(
        " 3, 2 / 3 | 9 (5) | DELIVERY_LIMIT_EXCEEDED 3, VALIDATION 1 |"
    )
    assert rows["1 kill -9"].endswith(" - | - | - |")


def test_share_rows_show_their_dead_letter_reasons_even_when_there_were_none() -> None:
    table = summarise([bounded(0, 1, [1], {})])
    assert "dead letters by reason" in table.splitlines()[0]
    assert table.splitlines()[2].endswith(" 0, 0 / 1 | 1 (1) | - |")
