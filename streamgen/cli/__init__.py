"""The ``streamgen`` command.

Subcommands load lazily, so ``streamgen submit`` never imports torch.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from streamgen.log_routing import demote_known_noise

# command name -> "module:attribute"; each module owns one command (or group).
COMMANDS = {
    "dev": "streamgen.cli.dev:dev",
    "topics": "streamgen.cli.topics:topics",
    "submit": "streamgen.cli.submit:submit",
    "cancel": "streamgen.cli.cancel:cancel",
    "model": "streamgen.cli.model:model",
    "worker": "streamgen.cli.worker:worker",
    "fleet": "streamgen.cli.fleet:fleet",
    "replay": "streamgen.cli.replay:replay",
    "lag": "streamgen.cli.lag:lag",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command: Any = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.option("--log-level", default="INFO", envvar="STREAMGEN_LOG_LEVEL", show_default=True)
def main(log_level: str) -> None:
    """streamgen: a Kafka consumer fleet that turns image-generation requests into images."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    demote_known_noise()
    # The schema registry client logs every HTTP request at INFO: noise at the default level,
    # still there with --log-level DEBUG.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for chatty in ("httpx", "httpx2", "httpcore"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
