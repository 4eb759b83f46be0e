"""Secrets read from files, so they need not sit in a settings file, a flag or ``ps`` output.

``store.access_key_file`` / ``store.secret_key_file`` hold one value each (a mounted Kubernetes
or Docker secret); ``kafka.client_config_file`` is a librdkafka properties file (``key=value``
lines). A file that cannot be read stops start-up with a ConfigError naming the setting — and
never its contents: the message names the path, the value stays out of logs (DESIGN 9).
"""

from __future__ import annotations

from pathlib import Path

from streamgen.errors import ConfigError

__all__ = ["SECRET_SETTINGS", "read_properties_file", "read_secret_file"]

# Settings whose values must never appear in a message, a log line or a repr.
SECRET_SETTINGS = frozenset({"kafka.client_config", "store.access_key", "store.secret_key"})


def _read(setting: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(setting, f"cannot read {path}: {reason}") from None


def read_secret_file(setting: str, path: str) -> str:
    """The file's content without its trailing newline (``echo secret > file`` adds one)."""
    value = _read(setting, path).rstrip("\r\n")
    if not value:
        raise ConfigError(setting, f"{path} is empty")
    return value


def read_properties_file(setting: str, path: str) -> dict[str, str]:
    """``key=value`` lines (``#`` and ``!`` start comments), as librdkafka and Java clients
    write them. A value may hold ``,`` and ``=``, which the comma-separated
    ``kafka.client_config`` cannot carry."""
    config: dict[str, str] = {}
    for number, raw in enumerate(_read(setting, path).splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            # Only the line number: the line may be a password that lost its key.
            raise ConfigError(setting, f"{path} line {number}: expected key=value")
        config[key.strip()] = value.strip()
    return config
