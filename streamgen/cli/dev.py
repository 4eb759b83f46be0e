"""``streamgen dev``: the local stack (a real Kafka broker, a real MinIO and a real schema
registry) without Docker."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import click

from streamgen.errors import StreamgenError
from streamgen.local.process import LocalStackError
from streamgen.local.stack import LocalStack

__all__ = ["dev"]


@click.group()
@click.option(
    "--state-dir",
    envvar="STREAMGEN_STATE_DIR",
    default=".state",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where ports, data, logs and pid files of the stack live.",
)
@click.pass_context
def dev(ctx: click.Context, state_dir: Path) -> None:
    """Run the local stack: Kafka (KRaft) from Maven jars, MinIO built with go install, and
    a Confluent-compatible schema registry (Apicurio, built with mvn)."""
    ctx.obj = state_dir


def _stack(ctx: click.Context, **choices: Any) -> LocalStack:
    try:
        return LocalStack(ctx.obj, **choices)
    except LocalStackError as exc:
        raise click.ClickException(str(exc)) from exc


def _existing(ctx: click.Context) -> LocalStack:
    stack = _stack(ctx)
    if not stack.exists():
        raise click.ClickException(f"no local stack in {stack.state_dir}; run `streamgen dev up`")
    return stack


@dev.command()
def prepare() -> None:
    """Download the Kafka jars, build MinIO and the schema registry into the cache (done once;
    `up` needs them)."""
    from streamgen.local.stack import prepare as prepare_stack

    started = time.monotonic()
    try:
        prepare_stack()
    except LocalStackError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stack components ready in {time.monotonic() - started:.1f}s")


# The broker's longest lock (group.share.max.record.lock.duration.ms): a CPU demo's batch is
# slow, and a batch that overruns its lock is redone.
DEV_SHARE_LOCK_MS = 60_000


@dev.command()
@click.option("--kafka-port", type=int, default=None, help="Default 9092 (new state dir only).")
@click.option("--controller-port", type=int, default=None, help="Default 9093.")
@click.option("--minio-port", type=int, default=None, help="Default 9000.")
@click.option("--minio-console-port", type=int, default=None, help="Default 9001.")
@click.option("--registry-port", type=int, default=None, help="Default 8081.")
@click.option(
    "--kafka-tls-port", type=int, default=None, help="The SASL_SSL listener (--secure): 9094."
)
@click.option(
    "--registry/--no-registry",
    default=None,
    help="Run the schema registry and export its URL (registry framing), or not (single-object "
    "framing; stops a running one). Default: as the last `up` in this state dir, else on.",
)
@click.option("--bucket", default="streamgen", show_default=True)
@click.option(
    "--secure",
    is_flag=True,
    default=None,
    help="SASL/SCRAM logins and ACLs on the broker, in the clear and over TLS with a CA the "
    "stack generates (new state dir only; kept by later `up`s).",
)
@click.pass_context
def up(
    ctx: click.Context,
    kafka_port: int | None,
    controller_port: int | None,
    minio_port: int | None,
    minio_console_port: int | None,
    registry_port: int | None,
    kafka_tls_port: int | None,
    registry: bool | None,
    bucket: str,
    secure: bool | None,
) -> None:
    """Start the stack (idempotent), create the topics and the bucket, print how to use them."""
    from streamgen.configuration import load_settings
    from streamgen.local.acls import grant, producer_acls, worker_acls
    from streamgen.ops.share_group import configure_share_group
    from streamgen.ops.topics import create_topics, plan_topics
    from streamgen.store import MinioStore

    started = time.monotonic()
    stack = _stack(
        ctx,
        kafka_port=kafka_port,
        controller_port=controller_port,
        minio_port=minio_port,
        minio_console_port=minio_console_port,
        secure=secure or None,
        registry_port=registry_port,
        registry=registry,
        kafka_tls_port=kafka_tls_port,
    )
    try:
        stack.up()
        if not stack.state.registry:
            stack.stop_registry()
        # Topic names, partitions, retention and the group follow the usual settings.
        settings = load_settings({"kafka.bootstrap_servers": stack.bootstrap_servers})
        admin = stack.kafka_client_config("admin")
        states = create_topics(
            stack.bootstrap_servers, plan_topics(settings.topics), client_config=admin
        )
        if settings.worker.mode == "share":  # STREAMGEN_WORKER_MODE=share
            configure_share_group(
                {**admin, "bootstrap.servers": stack.bootstrap_servers},
                settings.worker.group_id,
                lock_ms=DEV_SHARE_LOCK_MS,
            )
            click.echo(
                f"Share group {settings.worker.group_id}: from the earliest record, "
                f"lock {DEV_SHARE_LOCK_MS // 1000} s"
            )
        if stack.secure:
            admin["bootstrap.servers"] = stack.bootstrap_servers
            grant(
                admin,
                "worker",
                worker_acls(
                    settings.topics,
                    settings.worker.group_id,
                    share=settings.worker.mode == "share",
                ),
            )
            grant(admin, "producer", producer_acls(settings.topics))
        MinioStore(
            endpoint=stack.minio_endpoint,
            access_key=stack.minio_access_key,
            secret_key=stack.minio_secret_key,
            bucket=bucket,
        ).ensure_ready()
    except (LocalStackError, StreamgenError) as exc:
        raise click.ClickException(str(exc)) from exc

    kafka, minio, *registries = stack.status()
    click.echo(f"Kafka   {kafka.address}  pid {kafka.pid}  log {kafka.log_file}")
    if stack.secure:
        click.echo(
            f"        SASL/SCRAM-SHA-512 and ACLs: users worker, producer, admin "
            f"(passwords in {stack.state_dir / 'state.json'})"
        )
    if stack.secure and stack.state.kafka_tls_port:
        tls_login = stack.kafka_client_config("worker", tls=True)
        click.echo(
            f"        SASL_SSL on {stack.kafka_tls_bootstrap_servers}, its certificate signed "
            f"by the stack's CA {tls_login['ssl.ca.location']} (`streamgen dev env --tls`)"
        )
    click.echo(
        f"MinIO   http://{minio.address}  pid {minio.pid}  log {minio.log_file}\n"
        f"        console http://127.0.0.1:{stack.state.minio_console_port}  "
        f"user {stack.minio_access_key}  password {stack.minio_secret_key}"
    )
    for registry_status in registries:
        click.echo(
            f"Schema registry  {stack.schema_registry_url}  pid {registry_status.pid}  "
            f"log {registry_status.log_file}"
        )
    for state in states:
        click.echo(f"Topic   {state.name}  {state.partitions} partition(s)")
    click.echo(f"Bucket  s3://{bucket}")
    click.echo('\n# Point streamgen at this stack (or: eval "$(streamgen dev env)"):')
    _print_exports(stack, bucket)
    click.echo(f"\nUp in {time.monotonic() - started:.1f}s.")


@dev.command()
@click.option("--purge", is_flag=True, help="Also delete the stack's data, logs and state.")
@click.pass_context
def down(ctx: click.Context, purge: bool) -> None:
    """Stop the processes this state dir started (and nothing else)."""
    stack = _existing(ctx)
    try:
        stopped = stack.down(purge=purge)
    except LocalStackError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    if purge:
        click.echo(f"purged {stack.state_dir}")


@dev.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show each component; exits 1 unless all are running and answering."""
    stack = _existing(ctx)
    components = stack.status()
    for c in components:
        state = "ready" if c.ready else ("starting or stuck" if c.pid else "stopped")
        click.echo(f"{c.name:<8} {c.address:<22} pid {c.pid or '-':<8} {state}")
    if not all(c.ready for c in components):
        ctx.exit(1)


@dev.command()
@click.option("--bucket", default="streamgen", show_default=True)
@click.option(
    "--tls", is_flag=True, help="A secure stack's SASL_SSL listener, trusting the stack's CA."
)
@click.pass_context
def env(ctx: click.Context, bucket: str, tls: bool) -> None:
    """Print `export STREAMGEN_…=…` lines for this stack, for `eval "$(streamgen dev env)"`."""
    _print_exports(_existing(ctx), bucket, tls=tls)


def _print_exports(stack: LocalStack, bucket: str, *, tls: bool = False) -> None:
    who = "the worker user's Kafka login, " if stack.secure else ""
    click.echo(f"# Development only: {who}MinIO's keys are local-stack credentials.")
    try:
        exports = stack.env(bucket, tls=tls)
    except LocalStackError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, value in exports.items():
        click.echo(f"export {name}={shlex.quote(value)}")
