"""Configuring a share group (``worker.mode=share``) through the AdminClient: where a new group
starts reading, and how long a record stays locked to the worker it was handed to.

Kafka 4.2.2 takes both as group configs (``incremental_alter_configs`` on a GROUP resource),
for a group that does not exist yet too. The delivery count limit is not a group config there
(the broker refuses ``share.delivery.count.limit`` as unknown): it is the broker's
``group.share.delivery.count.limit`` (5), which ``worker.share_delivery_limit`` stays below.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from streamgen.errors import ConfigError

__all__ = ["configure_share_group"]


def configure_share_group(
    client_config: Mapping[str, Any],
    group_id: str,
    *,
    lock_ms: int,
    offset_reset: str = "earliest",
    timeout_s: float = 30.0,
) -> None:
    """Set the group's ``share.auto.offset.reset`` (a new share group starts at the end of the
    log by default, so requests published before the first worker joined would never be
    served) and ``share.record.lock.duration.ms``; ConfigError if the broker refuses."""
    entries = [
        ConfigEntry(
            "share.auto.offset.reset", offset_reset, incremental_operation=AlterConfigOpType.SET
        ),
        ConfigEntry(
            "share.record.lock.duration.ms",
            str(lock_ms),
            incremental_operation=AlterConfigOpType.SET,
        ),
    ]
    resource = ConfigResource(ResourceType.GROUP, group_id, incremental_configs=entries)
    wanted = {
        "share.auto.offset.reset": offset_reset,
        "share.record.lock.duration.ms": str(lock_ms),
    }
    admin = AdminClient(dict(client_config))  # held until the answer: its end cancels the ask
    deadline = time.monotonic() + timeout_s
    try:
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(timeout=timeout_s)
        # The answer comes before the broker serves the new values: on a broker just started,
        # a describe at once still read `latest` (measured), and so would a worker's start-up.
        while (found := _described(admin, group_id, timeout_s)) != wanted:
            if time.monotonic() > deadline:
                raise ConfigError(
                    "worker.group_id",
                    f"share group {group_id!r} still has {found} {timeout_s:.0f}s after "
                    f"{wanted} was accepted",
                )
            time.sleep(0.1)
    except KafkaException as exc:
        raise ConfigError(
            "worker.group_id",
            f"the broker refused the share group {group_id!r}'s configs: {exc.args[0].str()}",
        ) from None


def _described(admin: AdminClient, group_id: str, timeout_s: float) -> dict[str, str]:
    (future,) = admin.describe_configs([ConfigResource(ResourceType.GROUP, group_id)]).values()
    entries = future.result(timeout=timeout_s)
    names = ("share.auto.offset.reset", "share.record.lock.duration.ms")
    return {name: entries[name].value for name in names}
