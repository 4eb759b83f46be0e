"""``streamgen lag``: where a consumer group stands, in messages, in time and in GPU-seconds."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING

import click

from streamgen.cli.options import load_from_flags, settings_options
from streamgen.errors import ConfigError
from streamgen.lanes import lane_topic, request_lanes
from streamgen.settings import Settings

if TYPE_CHECKING:  # the ops modules load with the command, not with the CLI
    from streamgen.ops.lag_probe import LagProbe
    from streamgen.ops.lag_report import GroupLag


@click.command()
@settings_options
@click.option("--group", "group_id", default=None, help="Consumer group [worker.group_id].")
@click.option("--topic", default=None, help="Requests topic [topics.requests].")
@click.option(
    "--results-topic",
    default=None,
    help="Where throughput and the current rate are measured [topics.results].",
)
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Unprocessed requests decoded per partition (and recent results read) for the "
    "GPU-seconds estimate; 0 skips it.",
)
@click.option(
    "--watch",
    type=click.FloatRange(min=0.5),
    default=None,
    metavar="SECONDS",
    help="Refresh every SECONDS; the drain rate then comes from committed offsets.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per report.")
def lag(
    config_file: str | None,
    bootstrap_servers: str | None,
    set_values: tuple[str, ...],
    group_id: str | None,
    topic: str | None,
    results_topic: str | None,
    sample: int,
    watch: float | None,
    as_json: bool,
) -> None:
    """Per-partition lag of a consumer group (committed offset, log end, lag, age of the
    oldest unprocessed request, owner) with totals, the backlog in GPU-seconds and the time
    to drain it. With worker.mode=share, of the share group: its start offset stands for the
    committed one, and no partition has an owner."""
    settings = load_from_flags(
        config_file,
        bootstrap_servers,
        set_values,
        {
            "worker.group_id": group_id,
            "topics.requests": topic,
            "topics.results": results_topic,
        },
    )
    # One report per priority lane, highest first (one lane, topics.requests, without lanes).
    lanes = [
        (lane.name, lane_topic(settings.topics, lane.name))
        for lane in request_lanes(settings.topics)
    ]
    from streamgen.ops.lag_probe import LagProbe

    probe = LagProbe(settings)
    previous: dict[str, GroupLag] = {}
    while True:
        reports = {
            name: _report(probe, settings, topic, sample, previous.get(name))
            for name, topic in lanes
        }
        for name, report in reports.items():
            _show(report, name if len(lanes) > 1 else None, as_json=as_json)
        if not as_json and all(
            p.committed is None and not p.owner for r in reports.values() for p in r.partitions
        ):
            click.echo(
                f"note: group {settings.worker.group_id!r} has no committed offsets and no "
                "members on these topics (a typo, or it never ran?)",
                err=True,
            )
        if not watch:
            return
        previous = reports
        time.sleep(watch)
        if not as_json:
            click.clear()


def _report(
    probe: LagProbe, settings: Settings, topic: str, sample: int, previous: GroupLag | None
) -> GroupLag:
    from streamgen.ops.lag_probe import LagError
    from streamgen.ops.lag_report import committed_rate

    try:
        report = probe.snapshot(
            settings.worker.group_id,
            topic,
            results_topic=settings.topics.results,
            sample=sample,
        )
    except (LagError, ConfigError) as exc:  # ConfigError: the broker refused the login
        raise click.ClickException(str(exc)) from exc
    rate = committed_rate(previous, report) if previous is not None else None
    if rate is not None:
        report = dataclasses.replace(report, drain_rate=rate, drain_rate_source="committed offsets")
    return report


def _show(report: GroupLag, lane: str | None, *, as_json: bool) -> None:
    """One lane's report; with lanes, headed (or, in JSON, tagged) by its name."""
    from streamgen.ops.lag_report import render_table

    if as_json:
        click.echo(json.dumps(report.to_json() | ({"lane": lane} if lane else {})))
        return
    if lane:
        click.echo(f"lane {lane} ({report.topic})")
    click.echo(render_table(report))
    if lane:
        click.echo("")
