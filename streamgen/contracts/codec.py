"""Avro bytes on the wire ⇄ contract values, in the two framings Kafka producers use.

::

    Avro single-object   C3 01 | CRC-64-AVRO fingerprint (8 bytes, little-endian) | body
    Schema Registry      00    | schema id (4 bytes, big-endian)                    | body

Encoding uses the registry framing when ``kafka.schema_registry_url`` is set (the schema is
registered under ``<topic>-value``, Confluent's TopicNameStrategy) and single-object
otherwise. Decoding picks the framing by the first bytes, finds the writer schema (the
fingerprint table of :mod:`streamgen.contracts.schemas`, or the registry) and resolves it into
the current reader schema, so records from older producers decode with defaults filled in.

For any byte string, :meth:`AvroCodec.decode` returns a value or raises
:class:`~streamgen.errors.DecodeError` naming what was wrong; only an unreachable registry
raises :class:`SchemaRegistryUnavailable`, a transient error, because the same bytes will
decode once it is back.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError
from fastavro.validation import validate as avro_validate

from streamgen.contracts.registry import RegistrySubject, registry_client
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult
from streamgen.contracts.schemas import (
    REQUEST_SCHEMA,
    RESULT_SCHEMA,
    SchemaCatalog,
    WriterSchema,
    load_catalog,
)
from streamgen.errors import DecodeError, SchemaRegistryUnavailable
from streamgen.settings import KafkaSettings

__all__ = [
    "REQUEST_CONTRACT",
    "RESULT_CONTRACT",
    "AvroCodec",
    "Contract",
    "EncodeError",
    "SchemaRegistryUnavailable",
    "request_codec",
    "result_codec",
]

T = TypeVar("T")

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
REGISTRY_MAGIC = b"\x00"
REGISTRY_HEADER = len(REGISTRY_MAGIC) + 4


class EncodeError(ValueError):
    """A value does not fit its Avro schema (a producer-side bug or bad input)."""


@dataclass(frozen=True)
class Contract(Generic[T]):
    """How one record type maps between its Python value and its Avro record."""

    schema_name: str
    python_name: str
    from_record: Callable[[dict[str, Any]], T]
    to_record: Callable[[T], dict[str, Any]]


REQUEST_CONTRACT: Contract[GenerationRequest] = Contract(
    REQUEST_SCHEMA, "GenerationRequest", GenerationRequest.from_record, GenerationRequest.to_record
)
RESULT_CONTRACT: Contract[GenerationResult] = Contract(
    RESULT_SCHEMA, "GenerationResult", GenerationResult.from_record, GenerationResult.to_record
)


class AvroCodec(Generic[T]):
    """Encodes and decodes one record type; safe to share between threads."""

    def __init__(
        self,
        contract: Contract[T],
        *,
        topic: str,
        registry: SchemaRegistryClient | None = None,
        catalog: SchemaCatalog | None = None,
    ) -> None:
        self._contract = contract
        self._catalog = catalog or load_catalog()
        self._reader = self._catalog.current(contract.schema_name)
        # Confluent's TopicNameStrategy: the value schema of ``topic`` is subject <topic>-value.
        self._registry = (
            None if registry is None else RegistrySubject(registry, f"{topic}-value", self._reader)
        )

    # -- encode -----------------------------------------------------------------------------

    def encode(self, value: T) -> bytes:
        """The framed Avro bytes of ``value``, written with the current schema."""
        body = self._write(self._contract.to_record(value))
        if self._registry is None:
            return SINGLE_OBJECT_MAGIC + self._reader.fingerprint + body
        return REGISTRY_MAGIC + self._registry.schema_id().to_bytes(4, "big") + body

    def _write(self, record: dict[str, Any]) -> bytes:
        naive = _naive_datetime_field(record)
        if naive:
            raise EncodeError(
                f"{self._contract.python_name}.{naive} is a naive datetime; "
                "Avro timestamps need a timezone (use datetime.now(UTC))"
            )
        try:
            # fastavro's writer would silently write an int32 field out of range as a longer
            # varint that other Avro readers reject; validating first keeps the bytes portable.
            # The quiet pass first: with raise_errors=True fastavro builds (and JSON-formats)
            # an exception for every union branch a value does not take, which cost more than
            # the write itself; the loud pass runs only to name what does not fit.
            if not avro_validate(record, self._reader.parsed, raise_errors=False):
                avro_validate(record, self._reader.parsed, raise_errors=True)
            out = io.BytesIO()
            schemaless_writer(out, self._reader.parsed, record, strict=True)
        except ValidationError as exc:
            # One line per misfit field, not fastavro's JSON list: this ends up in CLI output.
            expected: dict[str, list[str]] = {}
            found: dict[str, Any] = {}
            for e in exc.errors:
                field = e.field.rpartition(".")[2] or e.field
                expected.setdefault(field, []).append(str(e.schema))
                found[field] = e.datum
            misfits = "; ".join(
                f"{f} is {found[f]!r}, not {' | '.join(kinds)}" for f, kinds in expected.items()
            )
            raise EncodeError(
                f"{self._contract.python_name} does not fit its schema: {misfits}"
            ) from exc
        except Exception as exc:
            raise EncodeError(
                f"{self._contract.python_name} does not fit its schema: {exc}"
            ) from exc
        return out.getvalue()

    def prepare(self) -> None:
        """Register the writer schema now (registry framing only), so that ``encode`` never
        has to reach the registry later: a worker learns at start-up, not at its first result,
        that the registry is unreachable or refuses the schema."""
        if self._registry is not None:
            self._registry.schema_id()

    # -- decode -----------------------------------------------------------------------------

    def decode(self, data: bytes | bytearray | memoryview | None) -> T:
        """The value framed in ``data``; DecodeError (or SchemaRegistryUnavailable) otherwise."""
        if data is None:
            raise DecodeError("no value: the record is a tombstone (null value)")
        data = bytes(data)
        if not data:
            raise DecodeError(
                "empty value: expected an Avro single-object (0xC3 0x01) "
                "or schema-registry (0x00) header"
            )
        if data[0] == SINGLE_OBJECT_MAGIC[0]:
            writer = self._single_object_writer(data)
            body = data[SINGLE_OBJECT_HEADER:]
        elif data[0] == REGISTRY_MAGIC[0]:
            writer = self._registry_writer(data)
            body = data[REGISTRY_HEADER:]
        else:
            raise DecodeError(
                f"unknown magic byte 0x{data[0]:02x}: expected 0xc3 0x01 (Avro single-object) "
                "or 0x00 (Confluent schema registry)"
            )
        return self._read(body, writer)

    def _single_object_writer(self, data: bytes) -> WriterSchema:
        if len(data) < SINGLE_OBJECT_HEADER:
            raise DecodeError(
                f"truncated: need {SINGLE_OBJECT_HEADER} bytes of single-object header, "
                f"got {len(data)}"
            )
        if data[1] != SINGLE_OBJECT_MAGIC[1]:
            raise DecodeError(f"bad single-object marker 0xc3 0x{data[1]:02x}: expected 0xc3 0x01")
        fp = data[2:SINGLE_OBJECT_HEADER]
        writer = self._catalog.by_fingerprint(fp)
        if writer is None:
            known = ", ".join(
                f"{s.fingerprint_hex} ({s.source})"
                for s in self._catalog.versions(self._contract.schema_name)
            )
            raise DecodeError(
                f"unknown single-object fingerprint 0x{int.from_bytes(fp, 'little'):016x}; "
                f"known {self._contract.python_name} schemas: {known}"
            )
        return self._check_name(writer)

    def _registry_writer(self, data: bytes) -> WriterSchema:
        if len(data) < REGISTRY_HEADER:
            raise DecodeError(
                f"truncated: need {REGISTRY_HEADER} bytes of schema-registry header, "
                f"got {len(data)}"
            )
        schema_id = int.from_bytes(data[1:REGISTRY_HEADER], "big")
        if self._registry is None:
            raise DecodeError(
                f"schema-registry framing (schema id {schema_id}) but no schema registry is "
                "configured (kafka.schema_registry_url)"
            )
        return self._check_name(self._registry.writer(schema_id))

    def _check_name(self, writer: WriterSchema) -> WriterSchema:
        if writer.name != self._reader.name:
            raise DecodeError(
                f"wrong record type: {writer.source} is {writer.name}, expected {self._reader.name}"
            )
        return writer

    def _read(self, body: bytes, writer: WriterSchema) -> T:
        buffer = io.BytesIO(body)
        reader = None if writer.fingerprint == self._reader.fingerprint else self._reader.parsed
        try:
            record = schemaless_reader(buffer, writer.parsed, reader)
        except Exception as exc:
            # EOFError, UnicodeDecodeError, IndexError (enum), OverflowError (timestamps) …:
            # whatever fastavro trips on, the bytes are at fault, never the worker.
            raise DecodeError(
                f"truncated or corrupt {writer.name} body ({len(body)} bytes, "
                f"writer {writer.source}): {type(exc).__name__}: {exc}"
            ) from exc
        if buffer.tell() != len(body):
            raise DecodeError(
                f"{len(body) - buffer.tell()} trailing bytes after the {writer.name} record "
                f"(writer {writer.source})"
            )
        if not isinstance(record, dict):
            raise DecodeError(f"{writer.source} decoded to {type(record).__name__}, not a record")
        try:
            return self._contract.from_record(record)
        except Exception as exc:
            raise DecodeError(
                f"record does not fit {self._contract.python_name}: {type(exc).__name__}: {exc}"
            ) from exc


def _naive_datetime_field(value: Any) -> str:
    """The dotted path of the first timezone-less datetime inside ``value``, or ""."""
    path = _naive_datetime_path(value)
    if path is None:
        return ""
    # Built only for the error: formatting every key on the way down cost as much as the scan.
    dotted = ""
    for key in reversed(path):
        if isinstance(key, int):
            dotted = f"{dotted}[{key}]"
        else:
            dotted = f"{dotted}.{key}" if dotted else key
    return dotted


def _naive_datetime_path(value: Any) -> list[str | int] | None:
    """The keys to the first naive datetime, innermost first; None when there is none."""
    if isinstance(value, datetime):
        return [] if value.tzinfo is None else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _naive_datetime_path(item)
            if found is not None:
                found.append(str(key))
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _naive_datetime_path(item)
            if found is not None:
                found.append(i)
                return found
    return None


def request_codec(
    kafka: KafkaSettings, topic: str, *, registry: SchemaRegistryClient | None = None
) -> AvroCodec[GenerationRequest]:
    """The codec for requests on ``topic``; ``registry`` overrides the one from settings."""
    return AvroCodec(REQUEST_CONTRACT, topic=topic, registry=registry or registry_client(kafka))


def result_codec(
    kafka: KafkaSettings, topic: str, *, registry: SchemaRegistryClient | None = None
) -> AvroCodec[GenerationResult]:
    """The codec for results on ``topic``; ``registry`` overrides the one from settings."""
    return AvroCodec(RESULT_CONTRACT, topic=topic, registry=registry or registry_client(kafka))
