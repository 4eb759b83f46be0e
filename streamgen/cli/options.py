"""Flags shared by every command that reads Settings: --config, --bootstrap-servers, --set."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from streamgen.configuration import load_settings
from streamgen.errors import ConfigError
from streamgen.settings import Settings

__all__ = ["load_from_flags", "overrides_from_flags", "settings_options"]

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
    """Settings from defaults < file < env < --set < dedicated flags; a bad one exits non-zero."""
    overrides = overrides_from_flags(bootstrap_servers, set_values, extra)
    try:
        return load_settings(overrides, config_file=config_file)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


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
