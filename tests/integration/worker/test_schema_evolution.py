"""Schema evolution end to end: old and new producers against a real worker, in both framings.

Registry framing runs against a real Confluent-compatible registry (Apicurio, the
``schema_registry`` fixture): producers register their own schema, the registry enforces the
subject's compatibility, the worker resolves any registered writer schema into its reader.
Single-object framing has no registry: a worker decodes only the fingerprints it ships with,
so workers must be upgraded before producers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_writer

from streamgen.contracts import codec as codec_module
from streamgen.contracts import dead_letter as dl
from streamgen.contracts.codec import REQUEST_CONTRACT, AvroCodec, request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult
from streamgen.contracts.schemas import (
    REQUEST_SCHEMA,
    RESULT_SCHEMA,
    SchemaCatalog,
    WriterSchema,
    load_catalog,
    parse_writer_schema,
)
from streamgen.errors import ConfigError
from streamgen.settings import Settings
from tests.integration.worker.conftest import (
    all_committed,
    make_request,
    publish,
    publish_raw,
    read_dead_letters,
    read_results,
    wait_until,
    worker_thread,
)
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration


def _version(name: str, version: str) -> WriterSchema:
    [schema] = [s for s in load_catalog().versions(name) if s.version == version]
    return schema


V1 = _version(REQUEST_SCHEMA, "v1")
CURRENT = _version(REQUEST_SCHEMA, "current")


def v1_record(request: GenerationRequest) -> dict[str, Any]:
    """What a producer still on v1 writes: only the fields v1 has."""
    record = request.to_record()
    return {f["name"]: record[f["name"]] for f in V1.parsed["fields"]}


def single_object_v1(request: GenerationRequest) -> bytes:
    body = io.BytesIO()
    schemaless_writer(body, V1.parsed, v1_record(request))
    return b"\xc3\x01" + V1.fingerprint + body.getvalue()


def schema_id(value: bytes | None) -> int:
    assert value is not None and value[:1] == b"\x00", "registry framing expected"
    return int.from_bytes(value[1:5], "big")


def process(settings: Settings, expected: int) -> dict[str, GenerationResult]:
    """Run a worker until ``expected`` results are out and everything is committed, then stop
    it cleanly; the results by request id."""
    with worker_thread(settings) as worker:
        results = read_results(settings, expected=expected, timeout=120)
        assert wait_until(lambda: all_committed(settings), 20)
        assert worker.stop_and_wait() == 0
    return {r.request_id: r for r in results}


@pytest.fixture
def registry_settings(worker_settings: Settings, schema_registry: str) -> Settings:
    return replace(
        worker_settings, kafka=replace(worker_settings.kafka, schema_registry_url=schema_registry)
    )


@pytest.fixture
def registry_client(schema_registry: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry})


# -- registry framing -------------------------------------------------------------------------


def test_v1_and_current_producers_register_their_schemas_and_both_succeed(
    registry_settings: Settings, registry_client: SchemaRegistryClient
) -> None:
    topic = registry_settings.topics.requests
    subject = f"{topic}-value"
    old, new = make_request(1), make_request(2, num_images=2, metadata={"sku": "42"})

    # A producer that never heard of streamgen's code: confluent-kafka's own Avro serializer
    # with the v1 schema, registering it on first use.
    v1_serializer = AvroSerializer(registry_client, V1.text, conf={"auto.register.schemas": True})
    old_value = v1_serializer(v1_record(old), SerializationContext(topic, MessageField.VALUE))
    publish_raw(registry_settings, [(old.request_id.encode(), old_value)])
    # The current schema only adds fields with defaults: the registry's FULL_TRANSITIVE (set by
    # `dev up`, as by the fixture) accepts it as version 2.
    publish(registry_settings, [new])

    assert registry_client.get_versions(subject) == [1, 2]
    sent = consume_all(registry_settings.kafka.bootstrap_servers, topic, expected=2)
    ids = {m.key(): schema_id(m.value()) for m in sent}
    assert ids[old.request_id.encode()] != ids[new.request_id.encode()]

    by_id = process(registry_settings, expected=2)
    assert {r.status for r in by_id.values()} == {"SUCCEEDED"}
    # The v1 record got the current defaults (one image); the current one what it asked for.
    assert len(by_id[old.request_id].images) == 1
    assert len(by_id[new.request_id].images) == 2
    assert by_id[new.request_id].metadata["sku"] == "42"


def test_an_incompatible_change_is_refused_by_the_registry(
    registry_settings: Settings, registry_client: SchemaRegistryClient
) -> None:
    topic = registry_settings.topics.requests
    subject = f"{topic}-value"
    request_codec(registry_settings.kafka, topic).prepare()  # registers the current schema

    # A new field without a default: a reader on it cannot read records written before it.
    breaking = json.loads(CURRENT.text)
    breaking["fields"].append({"name": "region", "type": "string"})
    breaking_text = json.dumps(breaking)
    with pytest.raises(SchemaRegistryError) as refused:
        registry_client.register_schema(subject, Schema(breaking_text, "AVRO"))
    assert refused.value.http_status_code == 409

    # A producer or worker built with that schema learns it at start-up, naming the setting.
    catalog = SchemaCatalog(
        [parse_writer_schema(breaking_text, version="current", source="breaking.avsc")]
    )
    codec = AvroCodec(REQUEST_CONTRACT, topic=topic, registry=registry_client, catalog=catalog)
    with pytest.raises(ConfigError, match=r"kafka\.schema_registry_url"):
        codec.prepare()
    assert registry_client.get_versions(subject) == [1]


def test_the_result_schema_is_registered_once_not_per_start_or_record(
    registry_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    results_subject = f"{registry_settings.topics.results}-value"
    calls: list[str] = []
    original: Callable[..., Any] = SchemaRegistryClient.register_schema

    def counting(self: SchemaRegistryClient, subject_name: str, *args: Any, **kw: Any) -> Any:
        calls.append(subject_name)
        return original(self, subject_name, *args, **kw)

    monkeypatch.setattr(SchemaRegistryClient, "register_schema", counting)

    for start in range(2):
        publish(registry_settings, [make_request(10 * start + i) for i in range(3)])
        process(registry_settings, expected=3 * (start + 1))

    # One registration call per worker start (at start-up, before the first record), none per
    # record; the registry keeps a single version however often the same schema comes back.
    assert calls.count(results_subject) == 2
    client = SchemaRegistryClient({"url": registry_settings.kafka.schema_registry_url})
    assert client.get_versions(results_subject) == [1]
    published = consume_all(
        registry_settings.kafka.bootstrap_servers, registry_settings.topics.results, expected=6
    )
    assert len({schema_id(m.value()) for m in published}) == 1


# -- single-object framing --------------------------------------------------------------------


def test_a_worker_that_knows_v1_and_current_decodes_both(worker_settings: Settings) -> None:
    old, new = make_request(1), make_request(2, num_images=2)
    publish_raw(worker_settings, [(old.request_id.encode(), single_object_v1(old))])
    publish(worker_settings, [new])

    by_id = process(worker_settings, expected=2)
    assert {r.status for r in by_id.values()} == {"SUCCEEDED"}
    assert len(by_id[old.request_id].images) == 1
    assert len(by_id[new.request_id].images) == 2


def test_a_worker_that_only_knows_v1_dead_letters_current_records_naming_the_fingerprint(
    worker_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = make_request(1), make_request(2)
    new_value = request_codec(worker_settings.kafka, worker_settings.topics.requests).encode(new)
    publish_raw(
        worker_settings,
        [(old.request_id.encode(), single_object_v1(old)), (new.request_id.encode(), new_value)],
    )
    # A worker deployed before the request schema changed: v1 is all it knows (and reads into).
    v1_only = SchemaCatalog(
        [
            replace(V1, version="current"),
            *(s for s in load_catalog().versions(RESULT_SCHEMA) if s.version == "current"),
        ]
    )
    monkeypatch.setattr(codec_module, "load_catalog", lambda: v1_only)

    by_id = process(worker_settings, expected=2)
    assert by_id[old.request_id].status == "SUCCEEDED"
    assert by_id[new.request_id].status == "FAILED"
    [(key, value, headers)] = read_dead_letters(worker_settings, expected=1)
    assert (key, value) == (new.request_id.encode(), new_value)
    assert headers[dl.H_STAGE] == "decode"
    message = headers[dl.H_MESSAGE]
    assert f"unknown single-object fingerprint {CURRENT.fingerprint_hex}" in message
    assert V1.fingerprint_hex in message  # and the ones it does know
