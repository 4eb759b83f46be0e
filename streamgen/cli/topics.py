"""``streamgen topics create``: the requests, results and dead-letter topics, and the bucket."""

from __future__ import annotations

import click

from streamgen.cli.options import load_from_flags, settings_options
from streamgen.errors import StreamgenError

__all__ = ["topics"]


@click.group()
def topics() -> None:
    """Manage streamgen's Kafka topics."""


@topics.command()
@settings_options
@click.option("--partitions", type=int, default=None, help="Partitions of the requests topic.")
@click.option("--replication-factor", type=int, default=None)
@click.option("--retention-ms", type=int, default=None)
@click.option(
    "--bucket/--no-bucket",
    default=True,
    show_default=True,
    help="Also create the object store's bucket (or directory) from store.url.",
)
def create(
    config_file: str | None,
    bootstrap_servers: str | None,
    set_values: tuple[str, ...],
    partitions: int | None,
    replication_factor: int | None,
    retention_ms: int | None,
    bucket: bool,
) -> None:
    """Create the topics from settings; running it again converges and changes nothing else.

    The requests topic gets topics.partitions partitions (they bound how many workers share
    the load); results and dead letters one each. Existing topics gain partitions up to the
    setting and get the configured retention.
    """
    from streamgen.ops.topics import create_topics, plan_topics
    from streamgen.store import open_store

    settings = load_from_flags(
        config_file,
        bootstrap_servers,
        set_values,
        {
            "topics.partitions": partitions,
            "topics.replication_factor": replication_factor,
            "topics.retention_ms": retention_ms,
        },
    )
    try:
        states = create_topics(
            settings.kafka.bootstrap_servers,
            plan_topics(settings.topics),
            client_config=settings.kafka.client_config,
        )
        for state in states:
            verb = "created" if state.created else "exists"
            click.echo(f"topic  {state.name}  {state.partitions} partition(s)  {verb}")
        if bucket:
            open_store(settings.store).ensure_ready()
            click.echo(f"store  {settings.store.url}  ready")
    except StreamgenError as exc:
        raise click.ClickException(str(exc)) from exc
