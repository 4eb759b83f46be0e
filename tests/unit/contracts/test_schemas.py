"""The schema catalog: every shipped version parses, fingerprints match the Avro spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamgen.contracts.schemas import (
    REQUEST_SCHEMA,
    RESULT_SCHEMA,
    SchemaCatalog,
    _load,
    crc64_avro,
    load_catalog,
    parse_writer_schema,
)

# The Avro specification's reference algorithm ("Schema Fingerprints"), written out here so
# that fastavro's implementation is checked against an independent one.
EMPTY64 = 0xC15D213AA4D7A795


def _rabin_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY64 & -(fp & 1))
        table.append(fp)
    return table


def reference_fingerprint(text: str) -> int:
    table = _rabin_table()
    fp = EMPTY64
    for byte in text.encode("utf-8"):
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize(
    ("canonical", "expected"),
    [
        # Avro's share/test/data/schema-tests.txt: "int" → 8247732601305521295.
        ('"int"', 0x7275D51A3F395C8F),
        ('"string"', 0x8F014872634503C7),
    ],
)
def test_crc64_avro_matches_the_spec_test_vectors(canonical: str, expected: int) -> None:
    assert 0x7275D51A3F395C8F == 8247732601305521295
    assert int.from_bytes(crc64_avro(canonical), "little") == expected
    assert reference_fingerprint(canonical) == expected


def test_every_shipped_schema_fingerprint_matches_the_reference_algorithm() -> None:
    for schema in load_catalog():
        assert int.from_bytes(schema.fingerprint, "little") == reference_fingerprint(
            schema.canonical
        )
        assert len(schema.fingerprint) == 8


def test_catalog_holds_current_request_result_and_request_history() -> None:
    catalog = load_catalog()
    assert catalog.current(REQUEST_SCHEMA).source == "GenerationRequest.avsc"
    assert catalog.current(RESULT_SCHEMA).source == "GenerationResult.avsc"
    versions = catalog.versions(REQUEST_SCHEMA)
    assert versions[0].version == "current"
    assert "v1" in {v.version for v in versions}
    fingerprints = [s.fingerprint for s in catalog]
    assert len(fingerprints) == len(set(fingerprints))
    for schema in catalog:
        assert catalog.by_fingerprint(schema.fingerprint) is schema


def test_current_request_schema_has_a_default_for_every_field_after_the_core() -> None:
    fields = json.loads(load_catalog().current(REQUEST_SCHEMA).text)["fields"]
    assert [f["name"] for f in fields if "default" not in f] == ["request_id", "prompt"]


def test_unknown_name_and_unknown_fingerprint() -> None:
    catalog = load_catalog()
    with pytest.raises(KeyError, match="no current schema named nope"):
        catalog.current("nope")
    assert catalog.by_fingerprint(b"\x00" * 8) is None


def test_fingerprint_hex_is_the_64_bit_number() -> None:
    schema = parse_writer_schema(
        '{"type":"record","name":"R","fields":[]}', version="x", source="s"
    )
    assert schema.fingerprint_hex == f"0x{reference_fingerprint(schema.canonical):016x}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not a valid Avro schema"),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}',
            "not a valid",
        ),
        ('"int"', "expected an Avro record schema"),
    ],
)
def test_parse_rejects_non_record_and_invalid_schemas(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_writer_schema(text, version="x", source="bad.avsc")


def _write(path: Path, name: str, fields: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "record", "name": name, "fields": fields}))


def test_load_reads_history_versions_by_file_name(tmp_path: Path) -> None:
    _write(tmp_path / "R.avsc", "ns.R", [{"name": "a", "type": "int"}])
    _write(tmp_path / "history" / "R.v1.avsc", "ns.R", [])
    catalog = SchemaCatalog(_load(tmp_path))
    assert [s.version for s in catalog.versions("ns.R")] == ["current", "v1"]


def test_load_rejects_history_file_without_a_version(tmp_path: Path) -> None:
    _write(tmp_path / "R.avsc", "ns.R", [])
    _write(tmp_path / "history" / "R.avsc", "ns.R", [])
    with pytest.raises(ValueError, match=r"history/R.avsc: expected <Name>.<version>.avsc"):
        _load(tmp_path)


def test_two_current_schemas_with_one_name_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "A.avsc", "ns.R", [])
    _write(tmp_path / "B.avsc", "ns.R", [{"name": "a", "type": "int"}])
    with pytest.raises(ValueError, match=r"two current schemas named ns.R"):
        SchemaCatalog(_load(tmp_path))


def test_every_field_added_since_an_old_version_has_a_default() -> None:
    """Avro resolution fills a field the writer lacked only from the reader's default: a new
    field without one would make every record of an older producer undecodable."""
    catalog = load_catalog()
    for name in (REQUEST_SCHEMA, RESULT_SCHEMA):
        current = json.loads(catalog.current(name).text)["fields"]
        for old in catalog.versions(name)[1:]:
            old_names = {f["name"] for f in json.loads(old.text)["fields"]}
            added = [f["name"] for f in current if f["name"] not in old_names]
            assert [f for f in current if f["name"] in added and "default" not in f] == [], old


def _enums(schema: object) -> dict[str, dict[str, object]]:
    """Every enum type of a parsed schema, by name."""
    found: dict[str, dict[str, object]] = {}
    if isinstance(schema, dict):
        if schema.get("type") == "enum":
            found[str(schema["name"])] = schema
        for value in schema.values():
            found.update(_enums(value))
    elif isinstance(schema, list):
        for value in schema:
            found.update(_enums(value))
    return found


def test_no_enum_symbol_is_added_that_an_old_reader_cannot_read() -> None:
    """Avro resolution fails on a symbol the reader's enum lacks unless that enum has a default;
    the registry here does not refuse such a change (tests/integration/worker/
    test_registry_compatibility.py), so this test does (docs/decisions.md)."""
    catalog = load_catalog()
    for name in (REQUEST_SCHEMA, RESULT_SCHEMA):
        current = _enums(json.loads(catalog.current(name).text))
        for old in catalog.versions(name)[1:]:
            for enum, old_type in _enums(json.loads(old.text)).items():
                added = set(current[enum]["symbols"]) - set(old_type["symbols"])  # type: ignore[arg-type]
                assert not added or "default" in old_type, (old.source, enum, added)


def test_an_old_status_reader_fails_on_a_new_symbol_and_a_defaulted_one_reads_the_default() -> None:
    """The evidence behind FAILED + CANCELLED: what fastavro (the codec's reader) does."""
    import io

    import fastavro

    current = json.loads(load_catalog().current(RESULT_SCHEMA).text)
    assert _enums(current)["Status"]["default"] == "FAILED"

    def with_symbols(schema: dict[str, object], symbols: list[str], default: bool) -> object:
        copy = json.loads(json.dumps(schema))
        status = next(f for f in copy["fields"] if f["name"] == "status")
        status["type"]["symbols"] = symbols
        if not default:
            del status["type"]["default"]
        return fastavro.parse_schema(copy)

    writer = with_symbols(current, ["SUCCEEDED", "FAILED", "CANCELLED"], default=True)
    record = {"request_id": "r", "status": "CANCELLED", "timings": {}}
    record["worker"] = {"worker_id": "w", "host": "h"}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, writer, record)

    def read(reader: object) -> object:
        return fastavro.schemaless_reader(io.BytesIO(out.getvalue()), writer, reader)["status"]  # type: ignore[arg-type,index,call-overload]

    old_reader = with_symbols(current, ["SUCCEEDED", "FAILED"], default=False)
    with pytest.raises(fastavro.read.SchemaResolutionError, match="CANCELLED not found"):
        read(old_reader)
    assert read(fastavro.parse_schema(current)) == "FAILED"
