"""Flags shared by every command that reads Settings: --config, --bootstrap-servers, --set.

A settings mistake, wherever it was made (a flag, ``--set``, a ``STREAMGEN_*`` variable, the
TOML file), ends the command with exit 4 (:data:`~streamgen.exit_codes.EXIT_CONFIG`) and one
line naming the setting: a supervisor reads 4 as "restarting unchanged fails the same way",
where click's usual 2 would read as "stopped with unfinished work".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, Any, TypeVar

import click

from streamgen.configuration import load_settings
from streamgen.errors import ConfigError
from streamgen.exit_codes import EXIT_CONFIG
from streamgen.settings import Settings

__all__ = [
    "SettingsCommand",
    "SettingsRefused",
    "load_from_flags",
    "overrides_from_flags",
    "settings_options",
]


class SettingsRefused(click.ClickException):
    """A setting is wrong: exit 4 with one line naming it, no usage text, no traceback."""

    exit_code = EXIT_CONFIG

    def show(self, file: IO[str] | None = None) -> None:
        click.echo(f"streamgen: cannot start: {self.format_message()}", err=True, file=file)


class SettingsCommand(click.Command):
    """A command whose flags are settings: a flag click cannot parse (``--max-in-flight abc``,
    a flag that does not exist) is a settings mistake too, so it exits 4 like the rest."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise SettingsRefused(exc.format_message()) from None


F = TypeVar("F", bound=Callable[..., Any])


def settings_options(func: F) -> F:
    """Adds --config FILE, --bootstrap-servers and repeatable --set section.field=value."""
    func = click.option(
        "--set",
        "set_values",
        multiple=True,
        metavar="SECTION.FIELD=VALUE",
        help="Any setting by its dotted name (see README: Settings), e.g. worker.max_wait_ms=100.",
    )(func)
    func = click.option(
        "--bootstrap-servers",
        envvar="STREAMGEN_KAFKA_BOOTSTRAP_SERVERS",
        default=None,
        help="Kafka bootstrap servers (host:port,…).",
    )(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False),
        envvar="STREAMGEN_CONFIG",
        default=None,
        help="TOML settings file ([kafka], [topics], [store], [engine], [worker], [validation]).",
    )(func)


def load_from_flags(
    config_file: str | None,
    bootstrap_servers: str | None,
    set_values: Iterable[str],
    extra: dict[str, Any] | None = None,
) -> Settings:
    """Settings from defaults < file < env < --set < dedicated flags; a bad one exits 4."""
    try:
        overrides = overrides_from_flags(bootstrap_servers, set_values, extra)
    except click.UsageError as exc:
        raise SettingsRefused(exc.format_message()) from None
    try:
        return load_settings(overrides, config_file=config_file)
    except ConfigError as exc:
        raise SettingsRefused(str(exc)) from None


def overrides_from_flags(
    bootstrap_servers: str | None,
    set_values: Iterable[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Dotted setting -> value from --set, then --bootstrap-servers, then dedicated flags."""
    overrides: dict[str, Any] = {}
    for item in set_values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(
                f"expected SECTION.FIELD=VALUE, got {item!r}", param_hint="--set"
            )
        overrides[name.strip()] = value
    if bootstrap_servers:
        overrides["kafka.bootstrap_servers"] = bootstrap_servers
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    return overrides
