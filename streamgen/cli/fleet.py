"""``streamgen fleet``: one worker process per GPU on this host, supervised."""

from __future__ import annotations

import socket
import sys

import click

from streamgen.cli.options import load_from_flags, settings_options


@click.command()
@settings_options
@click.option("--gpus", default=None, help="'all' or GPU ids like 0,1,3 [all when CUDA is there].")
@click.option("--workers", type=int, default=None, help="N CPU workers instead of GPUs.")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME=PATH_OR_ID",
    help="A logical model name and its pipeline; repeatable (as for `streamgen worker`).",
)
@click.option("--store", "store_url", default=None, help="file://DIR or s3://BUCKET[/PREFIX].")
@click.option("--group-id", default=None)
@click.option(
    "--metrics-base-port",
    type=int,
    default=9400,
    show_default=True,
    help="Worker i serves /metrics on this port + i; 0: no metrics.",
)
@click.option("--max-crashes", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--crash-window",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds: a worker crashing --max-crashes times within it is given up on.",
)
def fleet(
    config_file: str | None,
    bootstrap_servers: str | None,
    set_values: tuple[str, ...],
    gpus: str | None,
    workers: int | None,
    models: tuple[str, ...],
    store_url: str | None,
    group_id: str | None,
    metrics_base_port: int,
    max_crashes: int,
    crash_window: float,
) -> None:
    """Run one worker per GPU (or N CPU workers), restart the ones that die with backoff, and
    drain them all on SIGTERM/SIGINT (a second signal stops them at once).

    Exit codes: 0 every worker drained, 1 every worker was given up on, 2 some worker did not
    stop cleanly.
    """
    from streamgen.fleet.processes import Fleet
    from streamgen.fleet.supervisor import RestartPolicy, Supervisor, plan_slots

    overrides = {
        "engine.models": ",".join(models) if models else None,
        "store.url": store_url,
        "worker.group_id": group_id,
    }
    # Validates every setting once here, so a typo fails the fleet, not N children in a loop.
    settings = load_from_flags(config_file, bootstrap_servers, set_values, overrides)
    child_overrides = {
        item.partition("=")[0].strip(): item.partition("=")[2] for item in set_values
    }
    if bootstrap_servers:
        child_overrides["kafka.bootstrap_servers"] = bootstrap_servers
    child_overrides.update({k: v for k, v in overrides.items() if v is not None})
    try:
        slots = plan_slots(
            gpus=gpus,
            workers=workers,
            device_count=_cuda_devices() if workers is None else 0,
            host=socket.gethostname(),
            metrics_base_port=metrics_base_port,
        )
        policy = RestartPolicy(max_crashes=max_crashes, window_s=crash_window)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    runner = Fleet(
        slots,
        supervisor=Supervisor(policy),
        overrides=child_overrides,
        config_file=config_file,
        # Longer than each worker's own drain, so the fleet never kills a worker that is
        # still finishing its batches within its timeout.
        stop_timeout_s=settings.worker.drain_timeout_s + 30,
    )
    runner.install_signal_handlers()
    sys.exit(runner.run())


def _cuda_devices() -> int:
    import torch

    count: int = torch.cuda.device_count()
    return count
