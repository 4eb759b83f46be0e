"""``streamgen replay``: send dead letters back to be processed again, each at most once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from streamgen.cli.options import load_from_flags, settings_options
from streamgen.cli.progress import progress
from streamgen.errors import ConfigError

if TYPE_CHECKING:
    from streamgen.ops.replay_rules import DeadLetterView


@click.command()
@settings_options
@click.option("--stage", "stages", multiple=True, help="decode|validate|generate|store|publish.")
@click.option("--error-class", "error_classes", multiple=True, help="e.g. GenerationFailed.")
@click.option("--code", "codes", multiple=True, help="e.g. GENERATION_FAILED.")
@click.option(
    "--retryable/--not-retryable", "retryable", default=None, help="Only (non-)retryable failures."
)
@click.option("--since", default=None, help="Failed at or after: 30m, 2h, 7d ago or ISO 8601.")
@click.option("--until", default=None, help="Failed before: 30m, 2h, 7d ago or ISO 8601.")
@click.option("--partition", "partitions", type=int, multiple=True, help="Original partition.")
@click.option("--offset-range", default=None, metavar="FIRST-LAST", help="Original offsets.")
@click.option("--model", "models", multiple=True, help="Request's model (decodes the value).")
@click.option("--request-id", "request_ids", multiple=True)
@click.option("--dry-run", is_flag=True, help="List what would be replayed; change nothing.")
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), default=None, help="Records/s."
)
@click.option("--to", "to_topic", default=None, help="Target topic [the original topic].")
@click.option("--max-replays", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--group", default=None, help="Consumer group keeping replay progress [streamgen-replay]."
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Ignore the group's progress and examine the whole dead-letter topic.",
)
def replay(
    config_file: str | None,
    bootstrap_servers: str | None,
    set_values: tuple[str, ...],
    stages: tuple[str, ...],
    error_classes: tuple[str, ...],
    codes: tuple[str, ...],
    retryable: bool | None,
    since: str | None,
    until: str | None,
    partitions: tuple[int, ...],
    offset_range: str | None,
    models: tuple[str, ...],
    request_ids: tuple[str, ...],
    dry_run: bool,
    rate: float | None,
    to_topic: str | None,
    max_replays: int,
    group: str | None,
    from_beginning: bool,
) -> None:
    """Re-publish dead letters matching every filter given, keeping key, value and original
    headers and adding streamgen.replay.* provenance.

    Progress is committed in a consumer group on the dead-letter topic (after the broker
    acknowledged the re-published records), so running it twice replays nothing twice. The
    group's progress covers every record examined: to apply other filters to records already
    examined, use --from-beginning or another --group.
    """
    from streamgen.ops.replay_rules import ReplayFilter, parse_offset_range, parse_time
    from streamgen.ops.replay_run import DEFAULT_REPLAY_GROUP, Replayer, ReplayError

    settings = load_from_flags(config_file, bootstrap_servers, set_values)
    now_ms = int(time.time() * 1000)
    try:
        selection = ReplayFilter(
            stages=frozenset(stages),
            error_classes=frozenset(error_classes),
            codes=frozenset(codes),
            retryable=retryable,
            since_ms=parse_time(since, now_ms=now_ms, option="--since") if since else None,
            until_ms=parse_time(until, now_ms=now_ms, option="--until") if until else None,
            partitions=frozenset(partitions),
            offset_range=parse_offset_range(offset_range) if offset_range else None,
            models=frozenset(models),
            request_ids=frozenset(request_ids),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    replayer = Replayer(settings, group=group or DEFAULT_REPLAY_GROUP)
    with progress("dead letters") as report:
        try:
            summary = replayer.run(
                selection,
                to_topic=to_topic,
                max_replays=max_replays,
                rate=rate,
                dry_run=dry_run,
                from_beginning=from_beginning,
                progress=report,
            )
        except (ReplayError, ConfigError) as exc:  # ConfigError: the broker refused the login
            raise click.ClickException(str(exc)) from exc
    if dry_run:
        click.echo(_table(summary.would_replay, now_ms))
    verb = "would replay" if dry_run else "replayed"
    click.echo(
        f"examined {summary.examined}, matched {summary.matched}, {verb} "
        f"{len(summary.would_replay) if dry_run else summary.replayed}, skipped "
        f"{summary.skipped_max_replays} past --max-replays, {summary.skipped_no_topic} "
        "without a target topic"
    )
    if summary.skipped_missing_claim:
        raise click.ClickException(
            f"{summary.skipped_missing_claim} dead letters not replayed: their claim-checked "
            "bytes are missing from the object store or no longer match their sha256 (see the "
            "errors above); restore them and run again with --from-beginning"
        )


def _table(letters: list[DeadLetterView], now_ms: int) -> str:
    from streamgen.ops.lag_report import format_duration
    from streamgen.ops.text_table import text_table

    rows = [("REQUEST-ID", "ERROR", "ATTEMPTS", "AGE", "SOURCE")]
    for why in (letter.reason for letter in letters):
        rows.append(
            (
                why.request_id or "-",
                f"{why.stage}/{why.code}",
                str(why.attempts),
                format_duration(max(now_ms - why.failed_at_ms, 0) / 1000),
                f"{why.topic}[{why.partition}]@{why.offset}",
            )
        )
    return text_table(rows)
