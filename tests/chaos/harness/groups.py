"""Group settings the broker owns: under KIP-848 (group.protocol=consumer) the session timeout
is the group's config on the broker, not the member's session.timeout.ms."""

from __future__ import annotations

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from streamgen.settings import Settings

__all__ = ["set_consumer_group_session"]


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
