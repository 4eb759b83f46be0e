"""The Avro contracts as parsed schemas, and the fingerprint table that finds a writer's schema.

The ``.avsc`` files live at the top of the repository (``schemas/``, older versions under
``schemas/history/``). An installed wheel carries them inside the package
(``streamgen/schemas``, see pyproject's force-include); an editable checkout reads the
repository's directory. Every version of a record is kept, because single-object encoded
bytes name their writer schema only by its CRC-64-AVRO fingerprint: a record written by an
older producer must still find the schema it was written with.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

__all__ = [
    "REQUEST_SCHEMA",
    "RESULT_SCHEMA",
    "SchemaCatalog",
    "WriterSchema",
    "crc64_avro",
    "load_catalog",
    "parse_writer_schema",
]

REQUEST_SCHEMA = "dev.streamgen.GenerationRequest"
RESULT_SCHEMA = "dev.streamgen.GenerationResult"

CURRENT = "current"


@dataclass(frozen=True)
class WriterSchema:
    """One version of one record schema, parsed and fingerprinted."""

    name: str  # full name, e.g. dev.streamgen.GenerationRequest
    version: str  # "current", or the label from history/<Name>.<label>.avsc
    source: str  # where it came from (file name, or "registry id N")
    parsed: Any = field(repr=False)  # fastavro's parsed form, for readers and writers
    canonical: str = field(repr=False)  # Avro Parsing Canonical Form
    fingerprint: bytes = field(repr=False)  # CRC-64-AVRO, 8 bytes little-endian (wire order)
    text: str = field(repr=False)  # the full schema JSON (docs, defaults), for a registry

    @property
    def fingerprint_hex(self) -> str:
        """The fingerprint as the 64-bit number in hex, the way Avro tools print it."""
        return f"0x{int.from_bytes(self.fingerprint, 'little'):016x}"


def crc64_avro(canonical: str) -> bytes:
    """CRC-64-AVRO (Rabin) fingerprint of a Parsing Canonical Form, little-endian bytes.

    fastavro returns the eight bytes low-order first as hex, which is exactly the order the
    single-object encoding puts them on the wire.
    """
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def parse_writer_schema(schema: Any, *, version: str, source: str) -> WriterSchema:
    """Parse a schema (JSON text or decoded JSON) into a :class:`WriterSchema`.

    Each schema is parsed with its own table of named types, so two versions of the same
    record never clash. Raises ``ValueError`` for text that is not a valid Avro record schema.
    """
    try:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        parsed = parse_schema(json.loads(text), named_schemas={})
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        raise ValueError(f"{source}: not a valid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError(f"{source}: expected an Avro record schema")
    canonical = to_parsing_canonical_form(parsed)
    return WriterSchema(
        name=str(parsed["name"]),
        version=version,
        source=source,
        parsed=parsed,
        canonical=canonical,
        fingerprint=crc64_avro(canonical),
        text=text,
    )


class SchemaCatalog:
    """Every known version of every record schema, by full name and by fingerprint."""

    def __init__(self, schemas: list[WriterSchema]) -> None:
        self._current: dict[str, WriterSchema] = {}
        self._versions: dict[str, list[WriterSchema]] = {}
        self._by_fingerprint: dict[bytes, WriterSchema] = {}
        for schema in schemas:
            if schema.version == CURRENT:
                if schema.name in self._current:
                    raise ValueError(f"two current schemas named {schema.name}")
                self._current[schema.name] = schema
            self._versions.setdefault(schema.name, []).append(schema)
            # Two files with the same canonical form are the same writer schema (docs or
            # defaults differ): the first one, the current version, is kept.
            self._by_fingerprint.setdefault(schema.fingerprint, schema)

    def current(self, name: str) -> WriterSchema:
        """The schema this code reads into and writes with."""
        try:
            return self._current[name]
        except KeyError:
            raise KeyError(
                f"no current schema named {name}; known: {sorted(self._current)}"
            ) from None

    def versions(self, name: str) -> list[WriterSchema]:
        """Every known version of ``name``, current first."""
        return sorted(self._versions.get(name, []), key=lambda s: s.version != CURRENT)

    def by_fingerprint(self, fp: bytes) -> WriterSchema | None:
        return self._by_fingerprint.get(fp)

    def __iter__(self) -> Iterator[WriterSchema]:
        return iter(self._by_fingerprint.values())


def _schema_dir() -> Traversable:
    """``streamgen/schemas`` inside an installed wheel, else the checkout's ``schemas/``."""
    packaged = resources.files("streamgen") / "schemas"
    if packaged.is_dir():
        return packaged
    checkout = Path(str(resources.files("streamgen"))).parent / "schemas"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"Avro schemas not found: neither {packaged} (installed wheel) nor {checkout} (checkout)"
    )


def _avsc_files(directory: Traversable) -> list[Traversable]:
    return sorted(
        (p for p in directory.iterdir() if p.is_file() and p.name.endswith(".avsc")),
        key=lambda p: p.name,
    )


def _load(directory: Traversable) -> list[WriterSchema]:
    schemas = [
        parse_writer_schema(p.read_text("utf-8"), version=CURRENT, source=p.name)
        for p in _avsc_files(directory)
    ]
    history = directory / "history"
    if history.is_dir():
        for p in _avsc_files(history):
            # history/<Name>.<version>.avsc, e.g. GenerationRequest.v1.avsc
            stem = p.name.removesuffix(".avsc")
            _, _, version = stem.rpartition(".")
            if not version or version in {stem, CURRENT}:
                raise ValueError(f"history/{p.name}: expected <Name>.<version>.avsc")
            source = f"history/{p.name}"
            schemas.append(
                parse_writer_schema(p.read_text("utf-8"), version=version, source=source)
            )
    return schemas


@functools.cache
def load_catalog() -> SchemaCatalog:
    """The catalog of the schemas shipped with this package (read once per process)."""
    return SchemaCatalog(_load(_schema_dir()))
