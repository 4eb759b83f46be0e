"""The Kafka protocol's encodings, for the few requests the client library does not offer.

librdkafka's AdminClient (confluent-kafka 2.16) can neither list nor describe share groups, so
``streamgen lag`` asks the broker itself for a share group's start offsets
(``DescribeShareGroupOffsets``, KIP-932). This module is the pure half: building request
frames and reading responses, in the protocol's primitive types (big-endian integers, strings
with an int16 length, the flexible versions' unsigned varints, compact strings and arrays, and
tagged fields, which are skipped). ``streamgen.kafka_protocol.link`` sends them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["Reader", "WireError", "Writer", "request_frame"]

T = TypeVar("T")


class WireError(ValueError):
    """A response that does not parse as the protocol says it should."""


class Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def build(self) -> bytes:
        return b"".join(self._parts)

    def int8(self, value: int) -> Writer:
        self._parts.append(struct.pack(">b", value))
        return self

    def int16(self, value: int) -> Writer:
        self._parts.append(struct.pack(">h", value))
        return self

    def int32(self, value: int) -> Writer:
        self._parts.append(struct.pack(">i", value))
        return self

    def int64(self, value: int) -> Writer:
        self._parts.append(struct.pack(">q", value))
        return self

    def uvarint(self, value: int) -> Writer:
        out = bytearray()
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
        self._parts.append(bytes(out))
        return self

    def string(self, value: str | None) -> Writer:
        """A (nullable) string with an int16 length."""
        if value is None:
            return self.int16(-1)
        data = value.encode()
        self.int16(len(data))
        self._parts.append(data)
        return self

    def compact_string(self, value: str | None) -> Writer:
        if value is None:
            return self.uvarint(0)
        data = value.encode()
        self.uvarint(len(data) + 1)
        self._parts.append(data)
        return self

    def raw_bytes(self, value: bytes) -> Writer:
        """Bytes with an int32 length."""
        self.int32(len(value))
        self._parts.append(value)
        return self

    def compact_array(
        self, items: Sequence[T] | None, each: Callable[[Writer, T], object]
    ) -> Writer:
        if items is None:
            return self.uvarint(0)
        self.uvarint(len(items) + 1)
        for item in items:
            each(self, item)
        return self

    def no_tags(self) -> Writer:
        return self.uvarint(0)


class Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _take(self, count: int) -> bytes:
        if count < 0 or self._at + count > len(self._data):
            raise WireError(f"response ends after {len(self._data)} bytes, wanted {count} more")
        chunk = self._data[self._at : self._at + count]
        self._at += count
        return chunk

    def int8(self) -> int:
        return int(struct.unpack(">b", self._take(1))[0])

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self._take(8))[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise WireError("a varint longer than 64 bits")

    def string(self) -> str | None:
        length = self.int16()
        return None if length < 0 else self._take(length).decode()

    def compact_string(self) -> str | None:
        length = self.uvarint() - 1
        return None if length < 0 else self._take(length).decode()

    def raw_bytes(self) -> bytes:
        length = self.int32()
        return b"" if length < 0 else self._take(length)

    def uuid(self) -> bytes:
        return self._take(16)

    def array(self, each: Callable[[Reader], T]) -> list[T]:
        """An array with an int32 count (-1: null, read as empty)."""
        return [each(self) for _ in range(max(self.int32(), 0))]

    def compact_array(self, each: Callable[[Reader], T]) -> list[T]:
        return [each(self) for _ in range(max(self.uvarint() - 1, 0))]

    def tags(self) -> None:
        """Skips a tagged-fields section (none of the fields read here is tagged)."""
        for _ in range(self.uvarint()):
            self.uvarint()  # the tag
            self._take(self.uvarint())


def request_frame(
    api_key: int, version: int, correlation_id: int, body: bytes, *, flexible: bool
) -> bytes:
    """A request with its size prefix: header v1 (v2, with tagged fields, when ``flexible``)."""
    header = Writer().int16(api_key).int16(version).int32(correlation_id).string("streamgen-lag")
    if flexible:
        header.no_tags()
    payload = header.build() + body
    return struct.pack(">i", len(payload)) + payload
