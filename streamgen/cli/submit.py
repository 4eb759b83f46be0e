"""``streamgen submit``: publish requests, and optionally wait for their results and images."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

import click

from streamgen.cli.options import overrides_from_flags, settings_options
from streamgen.cli.progress import progress
from streamgen.cli.request_flags import FIELD_FLAGS, request_field_options
from streamgen.configuration import load_settings
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult
from streamgen.errors import ConfigError, StreamgenError
from streamgen.lanes import DEFAULT_LANE, lane_topic
from streamgen.settings import Settings
from streamgen.submit.fields import FieldError, parse_timestamp
from streamgen.submit.follow import ResultFollower
from streamgen.submit.progress_watch import ProgressWatch, describe
from streamgen.submit.publish import Delivery, DeliveryFailed, RequestPublisher
from streamgen.submit.sources import (
    MAX_REPORTED_ERRORS,
    InputError,
    Located,
    check_all,
    from_csv,
    from_flags,
    from_jsonl,
    new_request_id,
)
from streamgen.submit.summary import Summary, summarize
from streamgen.telemetry.tracing_setup import tracing_from_env

__all__ = ["submit"]


class Exit(IntEnum):
    """Exit statuses a script can tell apart (1 is click's: bad input or nothing published)."""

    OK = 0
    FAILED_RESULTS = 3
    TIMED_OUT = 4
    DOWNLOAD_FAILED = 5


# flag -> dotted setting (--config, --bootstrap-servers and --set are every command's)
SETTING_FLAGS = {
    "schema_registry_url": "kafka.schema_registry_url",
    "topic": "topics.requests",
    "results_topic": "topics.results",
    "store": "store.url",
}


@click.command()
@settings_options
@click.option("--schema-registry-url", help="kafka.schema_registry_url (registry framing)")
@click.option("--topic", help="topics.requests")
@click.option("--lane", default=DEFAULT_LANE, help="Priority lane (topics.lanes) [default].")
@click.option("--results-topic", help="topics.results")
@click.option("--store", help="store.url, file://DIR or s3://BUCKET[/PREFIX] (for --download).")
# The name this flag had before it matched `worker --store`; kept so scripts keep working.
@click.option("--store-url", hidden=True)
@click.option("--count", type=int, default=1, show_default=True, help="Requests from the flags.")
@click.option("--jsonl", type=click.Path(exists=True, dir_okay=False), help="One request a line.")
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False), help="Catalog.")
@click.option("--template", help='Prompt from CSV columns, e.g. "Product photo, {name}".')
@request_field_options
@click.option(
    "--no-validate", is_flag=True, help="Skip the worker's range checks (to test dead letters)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON lines).")
@click.option("--wait", is_flag=True, help="Follow results (and progress) until all have results.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="For --wait (s).",
)
@click.option("--download", type=click.Path(file_okay=False), help="Fetch images (implies --wait).")
@click.option(
    "--delivery-timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds.",
)
def submit(**opts: Any) -> None:
    """Publish image-generation requests to the requests topic and print their ids.

    Requests come from the flags (--prompt, --count), a JSONL file (--jsonl) or a CSV catalog
    (--csv with --template; columns named like request fields set them, the others go to
    metadata); field flags are defaults for every row. Each request is validated as the worker
    would before anything is published.

    Exit status: 0 all good; 1 bad input or not every request published; with --wait, 3 some
    requests FAILED, 4 results missing at the timeout; 5 some images could not be downloaded.
    """
    now = datetime.now(UTC)
    if opts["store_url"] is not None:
        if opts["store"] is not None:
            raise click.UsageError("give --store only (--store-url is its deprecated name)")
        click.echo("warning: --store-url is deprecated; use --store (the same setting)", err=True)
        opts["store"] = opts["store_url"]
    overrides = overrides_from_flags(
        opts["bootstrap_servers"],
        opts["set_values"],
        {setting: opts[flag] for flag, setting in SETTING_FLAGS.items()},
    )
    try:
        settings = load_settings(overrides, config_file=opts["config_file"])
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    # 1. Build and check every request before touching Kafka: a typo on line 7 publishes nothing.
    located = _read_requests(opts, now)
    _check(located, settings, now, validate_fields=not opts["no_validate"])
    requests = [item.request for item in located]
    wait = opts["wait"] or opts["download"] is not None

    try:
        # Off unless OTEL_* asks; when on, each record carries its "send" span's traceparent.
        with tracing_from_env("streamgen-submit"):
            results = _publish_and_follow(settings, requests, opts, wait=wait)
    except StreamgenError as exc:
        raise click.ClickException(str(exc)) from None
    if results is None:
        return
    # 5. Summarize (and download): the exit status says what a script needs to know.
    created = {r.request_id: r.created_at for r in requests if r.created_at is not None}
    summary = summarize([r.request_id for r in requests], results, created)
    _print_summary(summary, opts["as_json"])
    status = _exit_status(summary)
    if opts["download"] is not None:
        status = _download(settings, results, Path(opts["download"])) or status
    click.get_current_context().exit(int(status))


def _publish_and_follow(
    settings: Settings, requests: list[GenerationRequest], opts: dict[str, Any], *, wait: bool
) -> dict[str, GenerationResult] | None:
    topic = lane_topic(settings.topics, opts["lane"])  # ConfigError naming the known lanes
    results = settings.topics.results
    follower = ResultFollower(settings.kafka, result_codec(settings.kafka, results), results)
    watch = ProgressWatch.of(settings, lambda event: click.echo(describe(event), err=True))
    try:
        # 2. Mark the results (and progress) topic's end before publishing: none is missed.
        if wait:
            follower.mark()
            watch.start_from_end([r.request_id for r in requests])  # on stderr, where published
        # 3. Publish and wait for every delivery report.
        publisher = RequestPublisher(
            settings.kafka,
            request_codec(settings.kafka, topic),
            topic,
            delivery_timeout_s=opts["delivery_timeout"],
        )
        try:
            publisher.check_topic()
            deliveries = publisher.publish(requests)
        except DeliveryFailed as exc:
            _print_deliveries(exc.delivered, opts["as_json"])
            raise click.ClickException(str(exc)) from None
        finally:
            publisher.close()
        _print_deliveries(deliveries, opts["as_json"])
        if not wait:
            return None
        # 4. Follow the results until each request has one, or the timeout.
        return _follow(follower, [r.request_id for r in requests], opts["timeout"])
    finally:
        watch.close()
        follower.close()


def _read_requests(opts: dict[str, Any], now: datetime) -> list[Located]:
    fields = {k: opts[k] for k in FIELD_FLAGS if opts[k] is not None}
    for name in ("metadata", "adapters"):  # repeatable flags: empty is not given
        if opts[name]:
            fields[name] = opts[name]
    try:
        if "deadline" in fields:
            fields["deadline"] = parse_timestamp("deadline", fields["deadline"], now)
        sources = [opts["jsonl"] is not None, opts["csv_file"] is not None]
        if all(sources):
            raise InputError("--jsonl/--csv", "give one of them, not both")
        if any(sources) and opts["count"] != 1:
            raise InputError("--count", "only applies to requests from flags")
        if any(sources) and "request_id" in fields:
            raise InputError("--request-id", "only applies to a request from flags")
        if opts["template"] is not None and opts["csv_file"] is None:
            raise InputError("--template", "needs --csv")
        if opts["jsonl"] is not None:
            with Path(opts["jsonl"]).open(encoding="utf-8") as lines:
                return from_jsonl(
                    lines, source=opts["jsonl"], defaults=fields, new_id=new_request_id, now=now
                )
        if opts["csv_file"] is not None:
            if "prompt" in fields:
                raise InputError("--prompt", "with --csv the prompt comes from --template")
            with Path(opts["csv_file"]).open(encoding="utf-8", newline="") as lines:
                return from_csv(
                    lines,
                    source=opts["csv_file"],
                    template=opts["template"],
                    defaults=fields,
                    new_id=new_request_id,
                    now=now,
                )
        return from_flags(fields, count=opts["count"], new_id=new_request_id, now=now)
    except (InputError, FieldError) as exc:
        raise click.ClickException(str(exc)) from None


def _check(
    located: list[Located], settings: Settings, now: datetime, *, validate_fields: bool
) -> None:
    from streamgen.engine.schedulers import SCHEDULERS

    # A producer configured with the fleet's models checks names; otherwise it cannot know.
    models = set(settings.engine.models) | {"default"} if settings.engine.models else None
    errors = check_all(
        located,
        settings.validation,
        models=models,
        schedulers=SCHEDULERS,
        now=now,
        validate_fields=validate_fields,
    )
    if errors:
        shown = [str(e) for e in errors[:MAX_REPORTED_ERRORS]]
        more = len(errors) - len(shown)
        tail = [f"... and {more} more"] if more else []
        raise click.ClickException(
            f"{len(errors)} invalid request(s), nothing published:\n" + "\n".join(shown + tail)
        )


def _print_deliveries(deliveries: list[Delivery], as_json: bool) -> None:
    for d in deliveries:
        if as_json:
            record: dict[str, Any] = {"request_id": d.request_id, "topic": d.topic}
            record |= {"partition": d.partition, "offset": d.offset}
            click.echo(json.dumps(record))
        else:
            click.echo(d.request_id)


def _follow(
    follower: ResultFollower, ids: list[str], timeout_s: float
) -> dict[str, GenerationResult]:
    arrived = itertools.count(1)
    with progress("results") as report:
        return follower.follow(
            ids, timeout_s=timeout_s, on_result=lambda _: report(next(arrived), len(ids))
        )


def _print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"summary": summary.as_json()}))
    else:
        for line in summary.lines():
            click.echo(line)


def _exit_status(summary: Summary) -> Exit:
    if summary.missing:
        return Exit.TIMED_OUT
    if summary.failed:
        return Exit.FAILED_RESULTS
    return Exit.OK


def _download(settings: Settings, results: dict[str, GenerationResult], directory: Path) -> Exit:
    from streamgen.store import open_store
    from streamgen.submit.download import download_images

    try:
        report = download_images(open_store(settings.store), results.values(), directory)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(f"--download: {exc}") from None
    click.echo(f"downloaded: {len(report.written)} image(s) to {directory}", err=True)
    for uri, why in report.failures.items():
        click.echo(f"  not downloaded: {uri}: {why}", err=True)
    return Exit.DOWNLOAD_FAILED if report.failures else Exit.OK
