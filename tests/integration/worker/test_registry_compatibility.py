"""The registry refuses what would break a reader (README, "Schema evolution").

Against the real registry as ``streamgen dev up`` leaves it (the ``schema_registry`` fixture
starts it the same way), with no per-subject rule set by the test: the registry-wide
FULL_TRANSITIVE must refuse a request or result schema that drops a required field or adds one
without a default, accept a field added with a default, and a running worker must serve
records written with that addition.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamgen.contracts.progress import PROGRESS_SCHEMA
from streamgen.contracts.registry import EVOLUTION_COMPATIBILITY
from streamgen.contracts.schemas import REQUEST_SCHEMA, RESULT_SCHEMA, WriterSchema, load_catalog
from streamgen.settings import Settings
from tests.integration.worker.conftest import make_request, publish_raw, serve

pytestmark = pytest.mark.integration

HTTP_CONFLICT = 409


def current(name: str) -> WriterSchema:
    [schema] = [s for s in load_catalog().versions(name) if s.version == "current"]
    return schema


def edited(schema: WriterSchema, edit: Any) -> str:
    parsed = json.loads(schema.text)
    edit(parsed["fields"])
    return json.dumps(parsed)


def drop(field: str) -> Any:
    return lambda fields: fields.remove(next(f for f in fields if f["name"] == field))


def add(field: dict[str, Any]) -> Any:
    return lambda fields: fields.append(field)


@pytest.fixture
def registry_client(schema_registry: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry})


def test_dev_up_leaves_the_registry_at_full_transitive(
    registry_client: SchemaRegistryClient,
) -> None:
    assert registry_client.get_compatibility() == EVOLUTION_COMPATIBILITY == "FULL_TRANSITIVE"


BREAKING = {
    "request without request_id": (REQUEST_SCHEMA, drop("request_id")),
    "request without prompt": (REQUEST_SCHEMA, drop("prompt")),
    "request with a field and no default": (
        REQUEST_SCHEMA,
        add({"name": "region", "type": "string"}),
    ),
    "result without status": (RESULT_SCHEMA, drop("status")),
    "result with a field and no default": (
        RESULT_SCHEMA,
        add({"name": "region", "type": "string"}),
    ),
    "progress without stage": (PROGRESS_SCHEMA, drop("stage")),
    "progress with a field and no default": (
        PROGRESS_SCHEMA,
        add({"name": "eta_seconds", "type": "double"}),
    ),
}


@pytest.mark.parametrize("change", BREAKING, ids=list(BREAKING))
def test_a_breaking_schema_is_refused_at_registration(
    change: str, registry_client: SchemaRegistryClient
) -> None:
    name, edit = BREAKING[change]
    subject = f"test-{uuid.uuid4().hex[:10]}.{name}-value"
    schema = current(name)
    registry_client.register_schema(subject, Schema(schema.text, "AVRO"))

    with pytest.raises(SchemaRegistryError) as refused:
        registry_client.register_schema(subject, Schema(edited(schema, edit), "AVRO"))
    assert refused.value.http_status_code == HTTP_CONFLICT
    assert registry_client.get_versions(subject) == [1]


def test_a_field_added_with_a_default_is_accepted_and_served(
    worker_settings: Settings, schema_registry: str, registry_client: SchemaRegistryClient
) -> None:
    settings = replace(
        worker_settings, kafka=replace(worker_settings.kafka, schema_registry_url=schema_registry)
    )
    topic = settings.topics.requests
    subject = f"{topic}-value"
    old, new = make_request(1), make_request(2, num_images=2)
    old_schema = current(REQUEST_SCHEMA).text
    new_schema = edited(
        current(REQUEST_SCHEMA), add({"name": "region", "type": "string", "default": "none"})
    )

    # Two producers that never heard of streamgen's code, each registering its own schema.
    context = SerializationContext(topic, MessageField.VALUE)
    records = []
    for request, text, extra in ((old, old_schema, {}), (new, new_schema, {"region": "eu"})):
        serializer = AvroSerializer(registry_client, text, conf={"auto.register.schemas": True})
        value = serializer({**request.to_record(), **extra}, context)
        records.append((request.request_id.encode(), value))
    publish_raw(settings, records)
    assert registry_client.get_versions(subject) == [1, 2], "the addition was accepted"

    by_id = {r.request_id: r for r in serve(settings, expected=2)}
    assert {r.status for r in by_id.values()} == {"SUCCEEDED"}
    assert len(by_id[new.request_id].images) == 2


# -- the result status enum (docs/decisions.md, "A cancelled request's status") --------------


def with_status(symbols: list[str], default: str | None) -> Any:
    def edit(fields: list[dict[str, Any]]) -> None:
        status = next(f for f in fields if f["name"] == "status")
        status["type"] = {"type": "enum", "name": "Status", "symbols": symbols}
        if default is not None:
            status["type"]["default"] = default

    return edit


def published(name: str) -> list[str]:
    """Every published version of ``name``, oldest first, the current one last."""
    versions = load_catalog().versions(name)  # current first, then the history
    return [v.text for v in sorted(versions[1:], key=lambda v: v.version)] + [versions[0].text]


def test_the_registry_accepts_a_new_status_symbol_that_old_readers_cannot_read(
    registry_client: SchemaRegistryClient,
) -> None:
    """Why a cancelled request is FAILED with error code CANCELLED, not a CANCELLED status.

    Avro's rule: a reader whose enum has no default cannot read a symbol it lacks (fastavro
    raises; tests/unit/contracts/test_schemas.py shows it), and every published result schema
    lacks one. The registry here (Apicurio, FULL_TRANSITIVE) nevertheless accepts the symbol:
    it does not guard this change, so the project's own schema test does.
    """
    subject = f"test-{uuid.uuid4().hex[:10]}.status-value"
    for text in published(RESULT_SCHEMA):
        registry_client.register_schema(subject, Schema(text, "AVRO"))
    before = len(registry_client.get_versions(subject))
    symbols = ["SUCCEEDED", "FAILED", "CANCELLED"]
    registry_client.register_schema(
        subject, Schema(edited(current(RESULT_SCHEMA), with_status(symbols, None)), "AVRO")
    )
    assert len(registry_client.get_versions(subject)) == before + 1
