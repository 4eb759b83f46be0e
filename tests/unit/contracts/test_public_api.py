"""streamgen.contracts re-exports exactly its curated public names."""

from __future__ import annotations

import streamgen.contracts as contracts

PUBLIC = {
    "REQUEST_CONTRACT",
    "RESULT_CONTRACT",
    "AvroCodec",
    "Contract",
    "DeadLetterReason",
    "EncodeError",
    "GenerationRequest",
    "GenerationResult",
    "ResultError",
    "SchemaCatalog",
    "SchemaRegistryUnavailable",
    "Status",
    "StoredImage",
    "Task",
    "Timings",
    "WorkerIdentity",
    "WriterSchema",
    "dead_letter_headers",
    "header_map",
    "load_catalog",
    "registry_client",
    "request_codec",
    "result_codec",
    "validate",
}
SUBMODULES = {
    "cancel",
    "codec",
    "dead_letter",
    "formats",
    "progress",
    "registry",
    "request",
    "result",
    "schemas",
    "validation",
}


def test_all_is_exactly_the_public_names() -> None:
    assert set(contracts.__all__) == PUBLIC
    assert len(contracts.__all__) == len(PUBLIC)


def test_every_public_name_is_importable() -> None:
    for name in PUBLIC:
        assert getattr(contracts, name) is not None


def test_no_other_public_attribute_leaks() -> None:
    public = {name for name in vars(contracts) if not name.startswith("_")}
    assert public - SUBMODULES == PUBLIC
