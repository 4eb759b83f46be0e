"""Per-run figures of the chaos scenarios, and the table `scripts/chaos` prints from them.

A scenario test records one line of JSON per run in the file named by STREAMGEN_CHAOS_FIGURES
(nothing when it is unset, as in CI); ``python -m tests.chaos.harness.figures FILE`` turns the
lines into one table row per scenario and, with ``--write``, into docs/reliability.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.chaos.harness.oracle import Verdict

__all__ = ["RunFigures", "record", "record_verdict", "summarise"]

FIGURES_ENV = "STREAMGEN_CHAOS_FIGURES"


@dataclass(frozen=True)
class RunFigures:
    scenario: str
    requests: int
    lost: int
    duplicates: int
    dead_letters_expected: int
    dead_letters: int
    faults: int
    recovery_s: list[float]  # one per healed fault: heal -> lag 0 and every outcome in
    # Requests someone cancelled (scenario 15): how many, of them how many got a CANCELLED
    # result, and how many only their SUCCEEDED one (they finished before the cancel came).
    cancels: int = 0
    cancelled: int = 0
    finished_first: int = 0
    # Records tenants' caps set aside (scenario 16), all lanes together: the most one worker
    # held at one scrape of its /metrics, and the sum over the kills of what each victim held
    # at the scrape just before its kill.
    deferred_most: int = 0
    deferred_at_kills: int = 0
    # Per tenant the requests named (scenarios 15 and 16): [requests, lost, duplicates].
    tenants: dict[str, list[int]] = field(default_factory=dict)
    # The run's bound on duplicates, where a scenario states one per run (share mode), and the
    # records the faulted workers held when each fault struck (their round, from /metrics).
    duplicate_bound: int | None = None
    held_at_faults: list[int] = field(default_factory=list)
    # Dead letters of the run's requests by error code (streamgen.error.code).
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


def record(figures: RunFigures) -> None:
    path = os.environ.get(FIGURES_ENV)
    if path:
        with Path(path).open("a") as out:
            out.write(json.dumps(asdict(figures)) + "\n")


def record_verdict(
    scenario: str,
    verdict: Verdict,
    *,
    faults: int,
    recovery_s: list[float],
    dead_letters_expected: int = 0,
    cancels: tuple[int, int, int] = (0, 0, 0),
    deferred: tuple[int, int] = (0, 0),
    tenants: dict[str, list[int]] | None = None,
    duplicate_bound: int | None = None,
    held_at_faults: list[int] | None = None,
    dead_letter_reasons: dict[str, int] | None = None,
) -> None:
    """Record one run before its assertions, so failed runs count in the figures too.
    ``cancels``: (requests cancelled, answered CANCELLED, finished first); ``deferred``: (most
    set aside at once, set aside at the kills); ``tenants``: per tenant [requests, lost,
    duplicates]; as in RunFigures."""
    print(f"{scenario}: {verdict}")
    record(
        RunFigures(
            scenario=scenario,
            requests=verdict.requests,
            lost=len(verdict.lost),
            duplicates=verdict.duplicates,
            dead_letters_expected=dead_letters_expected,
            dead_letters=verdict.dead_letters,
            faults=faults,
            recovery_s=recovery_s,
            cancels=cancels[0],
            cancelled=cancels[1],
            finished_first=cancels[2],
            deferred_most=deferred[0],
            deferred_at_kills=deferred[1],
            tenants=tenants or {},
            duplicate_bound=duplicate_bound,
            held_at_faults=held_at_faults or [],
            dead_letter_reasons=dead_letter_reasons or {},
        )
    )


def _percentile(values: list[float], q: int) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.quantiles(values, n=100, method='inclusive')[q - 1]:.1f}"


def summarise(runs: list[RunFigures]) -> str:
    """A markdown table: one row per scenario; a column of cancels, and one of records set
    aside, when some run had any."""
    with_cancels = any(r.cancels for r in runs)
    with_deferred = any(r.deferred_most for r in runs)
    with_tenants = any(r.tenants for r in runs)
    with_bound = any(r.duplicate_bound is not None for r in runs)
    # Share mode states a bound per run; its dead letters by reason are shown even when none.
    with_reasons = with_bound or any(r.dead_letter_reasons for r in runs)
    header = (
        "| scenario | runs | requests | lost | duplicates / 1,000 | dead letters (expected / "
        "actual) | recovery p50 (s) | recovery p95 (s) |"
        + (" cancelled (CANCELLED / finished first) |" if with_cancels else "")
        + (" set aside: at the kills (most at once) |" if with_deferred else "")
        + (" per tenant: requests / lost / duplicates |" if with_tenants else "")
        + (
            " duplicates: all, most in a run / its bound | held at the faults: all (most) |"
            if with_bound
            else ""
        )
        + (" dead letters by reason |" if with_reasons else "")
        + "\n|---|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if with_cancels else "")
        + ("---:|" if with_deferred else "")
        + ("---|" if with_tenants else "")
        + ("---:|---:|" if with_bound else "")
        + ("---|" if with_reasons else "")
    )
    rows = [header]
    for scenario in sorted({r.scenario for r in runs}):
        mine = [r for r in runs if r.scenario == scenario]
        requests = sum(r.requests for r in mine)
        duplicates = sum(r.duplicates for r in mine)
        recovery = [s for r in mine for s in r.recovery_s]
        per_mille = 1000 * duplicates / requests if requests else 0.0
        rows.append(
            f"| {scenario} | {len(mine)} | {requests} | {sum(r.lost for r in mine)} | "
            f"{per_mille:.1f} | {sum(r.dead_letters_expected for r in mine)} / "
            f"{sum(r.dead_letters for r in mine)} | {_percentile(recovery, 50)} | "
            f"{_percentile(recovery, 95)} |"
            + (_cancel_cell(mine) if with_cancels else "")
            + (_deferred_cell(mine) if with_deferred else "")
            + (_tenant_cell(mine) if with_tenants else "")
            + (_bound_cells(mine) if with_bound else "")
            + (_reason_cell(mine) if with_reasons else "")
        )
    return "\n".join(rows)


def _cancel_cell(runs: list[RunFigures]) -> str:
    cancels = sum(r.cancels for r in runs)
    cancelled = sum(r.cancelled for r in runs)
    return f" {cancels} ({cancelled} / {sum(r.finished_first for r in runs)}) |"


def _deferred_cell(runs: list[RunFigures]) -> str:
    if not any(r.deferred_most for r in runs):
        return " - |"
    at_kills = sum(r.deferred_at_kills for r in runs)
    return f" {at_kills} ({max(r.deferred_most for r in runs)}) |"


def _tenant_cell(runs: list[RunFigures]) -> str:
    totals: dict[str, list[int]] = {}
    for run in runs:
        for tenant, row in run.tenants.items():
            total = totals.setdefault(tenant, [0, 0, 0])
            for i, n in enumerate(row):
                total[i] += n
    if not totals:
        return " - |"
    cells = (f"{t} {r[0]} / {r[1]} / {r[2]}" for t, r in sorted(totals.items()))
    return f" {', '.join(cells)} |"


def _bound_cells(runs: list[RunFigures]) -> str:
    bounded = [r for r in runs if r.duplicate_bound is not None]
    if not bounded:
        return " - | - |"
    worst = max(bounded, key=lambda r: (r.duplicates, -(r.duplicate_bound or 0)))
    held = [n for r in runs for n in r.held_at_faults]
    most = f" ({max(held)})" if held else ""
    return (
        f" {sum(r.duplicates for r in bounded)}, {worst.duplicates} / {worst.duplicate_bound} |"
        f" {sum(held)}{most} |"
    )


def _reason_cell(runs: list[RunFigures]) -> str:
    totals: dict[str, int] = {}
    for run in runs:
        for reason, n in run.dead_letter_reasons.items():
            totals[reason] = totals.get(reason, 0) + n
    return f" {', '.join(f'{k} {v}' for k, v in sorted(totals.items())) or '-'} |"


def versions() -> dict[str, str]:
    import confluent_kafka
    import diffusers
    import torch

    from streamgen.local.kafka import kafka_version, pom_path
    from streamgen.local.minio import MINIO_VERSION

    return {
        "Python": platform.python_version(),
        "confluent-kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "Kafka broker": kafka_version(pom_path()),
        "MinIO": MINIO_VERSION,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
    }


def load(path: Path) -> list[RunFigures]:
    return [RunFigures(**json.loads(line)) for line in path.read_text().splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("figures", type=Path)
    parser.add_argument("--write", type=Path, help="replace the figures section of this file")
    parser.add_argument("--command", default="scripts/chaos", help="what produced the figures")
    parser.add_argument(
        "--section", default="all", help="which figures section of the file (the scenarios run)"
    )
    args = parser.parse_args(argv)
    table = summarise(load(args.figures))
    print(table)
    if args.write:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"Measured {stamp} with `{args.command}` on {platform.machine()}, "
            f"{os.cpu_count()} CPU cores, no GPU (tiny model, 64x64, 2 steps).",
            "",
            *(f"- {name}: {version}" for name, version in versions().items()),
            "",
            table,
        ]
        _replace_section(args.write, args.section, "\n".join(lines))
    return 0


def _markers(section: str) -> tuple[str, str]:
    return f"<!-- figures:{section}:begin -->", f"<!-- figures:{section}:end -->"


def _replace_section(path: Path, section: str, body: str) -> None:
    """Rewrite the text between the section's markers; a new section goes at the end."""
    begin, end = _markers(section)
    text = path.read_text()
    if begin not in text:
        scenarios = "every scenario" if section == "all" else f"scenarios {section}"
        text = f"{text.rstrip()}\n\n### {scenarios.capitalize()}\n\n{begin}\n{end}\n"
    start, stop = text.index(begin) + len(begin), text.index(end)
    path.write_text(f"{text[:start]}\n{body}\n{text[stop:]}")


if __name__ == "__main__":
    raise SystemExit(main())
