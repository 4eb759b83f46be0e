"""The schema registry as the codec sees it: one subject to register the writer schema under,
and writer schemas to look up by id.

A Confluent-compatible registry (Confluent's, Apicurio's ``ccompat`` API, ``mock://`` in tests)
answers both. What it answers becomes streamgen's errors: a refused registration is a
:class:`~streamgen.errors.ConfigError` (a deployment problem, found at start-up by
:meth:`~streamgen.contracts.codec.AvroCodec.prepare`), an unknown id or a schema that is not
Avro is the record's fault (:class:`~streamgen.errors.DecodeError`), and a registry that does not
answer is :class:`~streamgen.errors.SchemaRegistryUnavailable`, transient: the same bytes decode
once it is back.
"""

from __future__ import annotations

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from streamgen.contracts.schemas import WriterSchema, parse_writer_schema
from streamgen.errors import ConfigError, DecodeError, SchemaRegistryUnavailable
from streamgen.settings import KafkaSettings

__all__ = ["EVOLUTION_COMPATIBILITY", "RegistrySubject", "registry_client"]

HTTP_NOT_FOUND = 404

# The registry rule that enforces the contracts' evolution rules (schemas/README.md): fields are
# added only with a default, never removed, renamed or retyped. FULL because producers, workers
# and result consumers upgrade in any order (an old reader meets new records, a new reader old
# ones); TRANSITIVE because records of every earlier version stay around to be read: on the
# topic within retention, in dead letters that `streamgen replay` sends back later, in
# claim-checked results in the store. BACKWARD would accept a schema that drops request_id.
EVOLUTION_COMPATIBILITY = "FULL_TRANSITIVE"


def registry_client(kafka: KafkaSettings) -> SchemaRegistryClient | None:
    """The registry client for these settings (``mock://…`` gives an in-memory one), or None."""
    if not kafka.schema_registry_url:
        return None
    client: SchemaRegistryClient = SchemaRegistryClient.new_client(
        {"url": kafka.schema_registry_url}
    )
    return client


class RegistrySubject:
    """``subject``'s id for the ``current`` schema (registered once), and the writer schemas
    of other ids (each looked up once); safe to share between threads (a race only repeats a
    registration or a lookup, which the registry answers the same)."""

    def __init__(self, client: SchemaRegistryClient, subject: str, current: WriterSchema) -> None:
        self._client = client
        self._subject = subject
        self._current = current
        self._registered_id: int | None = None
        self._by_schema_id: dict[int, WriterSchema] = {}

    def schema_id(self) -> int:
        """The id of the current schema under the subject, registering it the first time."""
        if self._registered_id is None:
            schema = Schema(self._current.text, "AVRO")
            try:
                self._registered_id = int(self._client.register_schema(self._subject, schema))
            except SchemaRegistryError as exc:
                if exc.http_status_code is not None and 400 <= exc.http_status_code < 500:
                    # 409 incompatible / 422 invalid: a deployment problem, not a hiccup.
                    raise ConfigError(
                        "kafka.schema_registry_url",
                        f"registry refused {self._current.name} under subject "
                        f"{self._subject!r}: {exc}",
                    ) from exc
                raise _unavailable(f"registering subject {self._subject!r}", exc) from exc
            except Exception as exc:
                raise _unavailable(f"registering subject {self._subject!r}", exc) from exc
        return self._registered_id

    def writer(self, schema_id: int) -> WriterSchema:
        """The Avro schema registered under ``schema_id``."""
        cached = self._by_schema_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == HTTP_NOT_FOUND:
                raise DecodeError(f"unknown schema-registry schema id {schema_id}") from exc
            raise _unavailable(f"looking up schema id {schema_id}", exc) from exc
        except Exception as exc:
            raise _unavailable(f"looking up schema id {schema_id}", exc) from exc
        if (schema.schema_type or "AVRO") != "AVRO":
            raise DecodeError(f"schema id {schema_id} is a {schema.schema_type} schema, not Avro")
        try:
            writer = parse_writer_schema(
                schema.schema_str, version=f"registry:{schema_id}", source=f"schema id {schema_id}"
            )
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc
        self._by_schema_id[schema_id] = writer
        return writer


def _unavailable(doing: str, exc: Exception) -> SchemaRegistryUnavailable:
    return SchemaRegistryUnavailable(
        f"schema registry unavailable while {doing}: {type(exc).__name__}: {exc}"
    )
