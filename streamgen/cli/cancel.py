"""``streamgen cancel REQUEST_ID...``: ask the workers not to generate these requests."""

from __future__ import annotations

import click

from streamgen.cli.options import load_from_flags, settings_options


@click.command()
@settings_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", default="", help="Why, for the logs (at most 500 characters).")
def cancel(
    config_file: str | None,
    bootstrap_servers: str | None,
    set_values: tuple[str, ...],
    request_ids: tuple[str, ...],
    reason: str,
) -> None:
    """Publish a cancel for each REQUEST_ID to the cancels topic [topics.cancels].

    A request not yet generated is not generated, one being generated leaves its batch at the
    next denoising step; either way its result is FAILED with error code CANCELLED and it is
    not dead-lettered. A request already finished keeps its result.
    """
    from streamgen.submit.cancel import cancel_requests
    from streamgen.submit.publish import DeliveryFailed

    settings = load_from_flags(config_file, bootstrap_servers, set_values)
    try:
        sent = cancel_requests(settings, request_ids, reason=reason)
    except (ValueError, DeliveryFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"cancel published for {len(sent)} request(s) on {settings.topics.cancels}")
