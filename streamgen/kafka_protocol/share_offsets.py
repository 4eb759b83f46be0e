"""Where a share group stands on each partition, asked of the group's coordinator with
``DescribeShareGroupOffsets`` (KIP-932) over ``streamgen.kafka_protocol.link``, since librdkafka's
AdminClient has no call for it.

Two figures per partition: the share-partition start offset, before which every record is
finished (accepted, rejected, or archived past the delivery limit), and, from brokers that
answer version 1 (Kafka 4.2 and later), the lag: the records from it to the log end not yet
finished, handed-out ones included. The start offset alone can stand still while records after
it are accepted (the broker persists it lazily: 0 with 2 of 5 records accepted was seen on
Kafka 4.2.2), so the lag is the backlog when the broker gives it. A partition no member has read
yet has neither (None).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from streamgen.kafka_protocol.link import KafkaLink, LinkError
from streamgen.kafka_protocol.wire import Reader, WireError, Writer
from streamgen.settings import KafkaSettings

__all__ = ["ShareOffset", "ShareOffsetsError", "share_offsets"]

FIND_COORDINATOR, DESCRIBE_SHARE_GROUP_OFFSETS = 10, 90
GROUP_ID_NOT_FOUND = 69
_RETRIABLE = {
    14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE",
    16: "NOT_COORDINATOR",
}
_REFUSED = {
    29: "TOPIC_AUTHORIZATION_FAILED",
    30: "GROUP_AUTHORIZATION_FAILED",
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    35: "UNSUPPORTED_VERSION",
}
TPKey = tuple[str, int]


@dataclass(frozen=True)
class ShareOffset:
    start: int | None = None
    lag: int | None = None  # None: a version-0 broker, or a partition not read yet


class ShareOffsetsError(RuntimeError):
    """The broker could not say where the share group stands; the message says why."""


def share_offsets(
    kafka: KafkaSettings, group: str, tps: Sequence[TPKey] | None, *, timeout_s: float = 15.0
) -> dict[TPKey, ShareOffset]:
    """Each partition's start offset and lag in share group ``group`` (both None where no
    member has read it yet, and everywhere for a group the broker does not know); with
    ``tps`` None, every partition the group has read."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _ask(kafka, group, tps, max(deadline - time.monotonic(), 1.0))
        except _Retry as exc:
            if time.monotonic() >= deadline:
                raise ShareOffsetsError(
                    f"group {group!r}: the coordinator still answers {exc} after {timeout_s:g} s"
                ) from exc
            time.sleep(0.5)


class _Retry(Exception):
    pass


def _ask(
    kafka: KafkaSettings, group: str, tps: Sequence[TPKey] | None, timeout_s: float
) -> dict[TPKey, ShareOffset]:
    host, port = _coordinator(kafka, group, timeout_s)
    with KafkaLink(host, port, kafka.client_config, timeout_s) as link:
        version = 1 if link.supports(DESCRIBE_SHARE_GROUP_OFFSETS, 1) else 0
        if not link.supports(DESCRIBE_SHARE_GROUP_OFFSETS, version):
            raise ShareOffsetsError(
                f"the broker at {host}:{port} cannot describe share groups "
                "(DescribeShareGroupOffsets, Kafka 4.1 and later with share groups enabled)"
            )
        body = Writer().uvarint(2).compact_string(group)  # one group
        if tps is None:
            body.uvarint(0)  # null: every partition the group has read
        else:
            topics: dict[str, list[int]] = {}
            for topic, partition in tps:
                topics.setdefault(topic, []).append(partition)
            body.uvarint(len(topics) + 1)
            for topic, partitions in sorted(topics.items()):
                body.compact_string(topic).compact_array(partitions, Writer.int32).no_tags()
        request = body.no_tags().no_tags().build()
        try:
            return _offsets(
                link.call(DESCRIBE_SHARE_GROUP_OFFSETS, version, request, flexible=True),
                group,
                tps,
                version,
            )
        except WireError as exc:
            raise ShareOffsetsError(f"DescribeShareGroupOffsets: {exc}") from exc


def _offsets(
    reader: Reader, group: str, tps: Sequence[TPKey] | None, version: int
) -> dict[TPKey, ShareOffset]:
    out = dict.fromkeys(tps or (), ShareOffset())
    reader.int32()  # throttle
    for _ in range(reader.uvarint() - 1):
        reader.compact_string()
        for _ in range(reader.uvarint() - 1):
            topic = reader.compact_string() or ""
            reader.uuid()
            for _ in range(reader.uvarint() - 1):
                partition, start = reader.int32(), reader.int64()
                reader.int32()  # leader epoch
                lag = reader.int64() if version >= 1 else None
                error, message = reader.int16(), reader.compact_string()
                reader.tags()
                _check(error, message, f"{topic}[{partition}]")
                if tps is None or (topic, partition) in out:
                    out[(topic, partition)] = (
                        ShareOffset(start, lag if lag is not None and lag >= 0 else None)
                        if start >= 0
                        else ShareOffset()
                    )
            reader.tags()
        error, message = reader.int16(), reader.compact_string()
        reader.tags()
        if error == GROUP_ID_NOT_FOUND:
            return dict.fromkeys(tps or (), ShareOffset())
        _check(error, message, f"group {group!r}")
    return out


def _check(error: int, message: str | None, what: str) -> None:
    if not error:
        return
    if error in _RETRIABLE:
        raise _Retry(_RETRIABLE[error])
    name = _REFUSED.get(error, f"error code {error}")
    raise ShareOffsetsError(
        f"{what}: the broker refused: {name}{f' ({message})' if message else ''}"
    )


def _coordinator(kafka: KafkaSettings, group: str, timeout_s: float) -> tuple[str, int]:
    """The group coordinator's address, asked of the first bootstrap server that answers."""
    failures = []
    for server in kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition("://")[2].rpartition(":")
        try:
            with KafkaLink(host.strip("[]"), int(port), kafka.client_config, timeout_s) as link:
                body = Writer().int8(0).compact_array([group], Writer.compact_string)
                reader = link.call(FIND_COORDINATOR, 4, body.no_tags().build(), flexible=True)
        except (LinkError, ValueError) as exc:
            failures.append(f"{server.strip()}: {exc}")
            continue
        try:
            reader.int32()  # throttle
            (found,) = reader.compact_array(_coordinator_entry)
        except (WireError, ValueError) as exc:
            raise ShareOffsetsError(f"FindCoordinator: {exc}") from exc
        coordinator, coordinator_port, error, message = found
        _check(error, message, f"finding group {group!r}'s coordinator")
        return coordinator or host, coordinator_port
    raise ShareOffsetsError(
        f"no answer from Kafka at {kafka.bootstrap_servers}: {'; '.join(failures)}"
    )


def _coordinator_entry(reader: Reader) -> tuple[str | None, int, int, str | None]:
    """One FindCoordinator (v4) answer: host, port, error code and message."""
    reader.compact_string()  # the key: the group asked about
    reader.int32()  # node id
    host, port, error, message = (
        reader.compact_string(),
        reader.int32(),
        reader.int16(),
        reader.compact_string(),
    )
    reader.tags()
    return host, port, error, message
