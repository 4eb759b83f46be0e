"""Group settings the broker owns: under KIP-848 (group.protocol=consumer) the session timeout
is the group's config on the broker, not the member's session.timeout.ms.

``PROTOCOLS`` is what every membership scenario runs under; :func:`with_protocol` gives a
run's settings one of them, with the same session timeout under both."""

from __future__ import annotations

from dataclasses import replace

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from streamgen.settings import Settings

__all__ = ["PROTOCOLS", "set_consumer_group_session", "with_protocol"]

PROTOCOLS = ("classic", "consumer")


def set_consumer_group_session(settings: Settings, session_ms: int, heartbeat_ms: int) -> None:
    """Give the (KIP-848) group of ``settings`` its own session and heartbeat interval."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    entries = [
        ConfigEntry(
            "consumer.session.timeout.ms",
            str(session_ms),
            incremental_operation=AlterConfigOpType.SET,
        ),
        ConfigEntry(
            "consumer.heartbeat.interval.ms",
            str(heartbeat_ms),
            incremental_operation=AlterConfigOpType.SET,
        ),
    ]
    resource = ConfigResource(
        ResourceType.GROUP, settings.worker.group_id, incremental_configs=entries
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def with_protocol(settings: Settings, protocol: str) -> Settings:
    """``settings`` under ``protocol``; under KIP-848 the group (on the broker) gets the
    members' session timeout, so a dead member is noticed as fast as under the classic one."""
    settings = replace(settings, worker=replace(settings.worker, group_protocol=protocol))
    if protocol == "consumer":
        set_consumer_group_session(settings, settings.worker.session_timeout_ms, 1000)
    return settings
