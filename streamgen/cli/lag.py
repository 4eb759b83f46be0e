"""``streamgen lag``: where a consumer group stands, in messages, in time and in GPU-seconds."""

from __future__ import annotations

import dataclasses
import json
import time

import click

from streamgen.cli.options import load_from_flags, settings_options
from streamgen.errors import ConfigError


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
    to drain it."""
    from streamgen.ops.lag_probe import LagError, LagProbe
    from streamgen.ops.lag_report import committed_rate, render_table

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
    probe = LagProbe(settings)
    previous = None
    while True:
        try:
            report = probe.snapshot(
                settings.worker.group_id,
                settings.topics.requests,
                results_topic=settings.topics.results,
                sample=sample,
            )
        except (LagError, ConfigError) as exc:  # ConfigError: the broker refused the login
            raise click.ClickException(str(exc)) from exc
        if previous is not None:
            rate = committed_rate(previous, report)
            if rate is not None:
                report = dataclasses.replace(
                    report, drain_rate=rate, drain_rate_source="committed offsets"
                )
        if as_json:
            click.echo(json.dumps(report.to_json()))
        else:
            if watch:
                click.clear()
            click.echo(render_table(report))
            if all(p.committed is None and not p.owner for p in report.partitions):
                click.echo(
                    f"note: group {report.group!r} has no committed offsets and no members "
                    "on this topic (a typo, or it never ran?)",
                    err=True,
                )
        if not watch:
            return
        previous = report
        time.sleep(watch)
