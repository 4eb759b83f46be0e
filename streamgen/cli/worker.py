"""``streamgen worker``: one consumer-group member driving one GPU (or the CPU)."""

from __future__ import annotations

import sys

import click

from streamgen.cli.options import (
    SettingsCommand,
    SettingsRefused,
    load_from_flags,
    settings_options,
)


def _models(values: tuple[str, ...]) -> str | None:
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SettingsRefused(
                f"setting 'engine.models' (--model): expected NAME=PATH_OR_HUB_ID, got {value!r}"
            )
    return ",".join(values) if values else None


@click.command(cls=SettingsCommand)
@settings_options
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME=PATH_OR_ID",
    help="A logical model name and its pipeline (local dir or hub id); repeatable. "
    "The first is also the model named 'default'.",
)
@click.option("--store", "store_url", default=None, help="file://DIR or s3://BUCKET[/PREFIX].")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N")
@click.option("--group-id", default=None)
@click.option("--group-instance-id", default=None, help="Static membership id.")
@click.option("--worker-id", default=None)
@click.option("--max-batch-size", type=int, default=None, help="0: probe per shape.")
@click.option("--max-wait-ms", type=int, default=None)
@click.option("--max-in-flight", type=int, default=None)
@click.option("--metrics-port", type=int, default=None)
def worker(
    config_file: str | None,
    bootstrap_servers: str | None,
    set_values: tuple[str, ...],
    models: tuple[str, ...],
    store_url: str | None,
    device: str | None,
    group_id: str | None,
    group_instance_id: str | None,
    worker_id: str | None,
    max_batch_size: int | None,
    max_wait_ms: int | None,
    max_in_flight: int | None,
    metrics_port: int | None,
) -> None:
    """Consume requests, generate in micro-batches, store images, publish results, commit.

    Stops on SIGTERM/SIGINT after draining in-flight work (a second signal stops at once).
    Exit codes: 0 drained cleanly, 2 stopped with unfinished work (it will be redone),
    3 fatal error (nothing unsafe committed), 4 misconfiguration found at start-up, a flag
    or setting click or the settings refused included (the one line names the setting).
    """
    from streamgen.telemetry.tracing_setup import tracing_from_env
    from streamgen.worker.run import run_worker

    settings = load_from_flags(
        config_file,
        bootstrap_servers,
        set_values,
        {
            "engine.models": _models(models),
            "store.url": store_url,
            "engine.device": device,
            "worker.group_id": group_id,
            "worker.group_instance_id": group_instance_id,
            "worker.worker_id": worker_id,
            "engine.max_batch_size": max_batch_size,
            "worker.max_wait_ms": max_wait_ms,
            "worker.max_in_flight": max_in_flight,
            "worker.metrics_port": metrics_port,
        },
    )
    if not settings.engine.models:
        raise SettingsRefused(
            "setting 'engine.models': no model configured: pass --model NAME=PATH (e.g. a dir "
            "written by `streamgen model init --arch tiny --out DIR`)"
        )
    with tracing_from_env("streamgen-worker"):  # OTEL_* variables; off without them
        code = run_worker(settings)
    sys.exit(code)
