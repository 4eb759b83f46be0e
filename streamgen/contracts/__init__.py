"""The contracts: request and result values, their Avro wire formats, and request validation.

Bytes → :class:`AvroCodec` ``.decode`` → :class:`GenerationRequest` → :func:`validate`; results
go back out through ``.encode``. Dead letters carry the original bytes plus the headers built
by :func:`dead_letter_headers`.
"""

from streamgen.contracts.codec import (
    REQUEST_CONTRACT,
    RESULT_CONTRACT,
    AvroCodec,
    Contract,
    EncodeError,
    SchemaRegistryUnavailable,
    request_codec,
    result_codec,
)
from streamgen.contracts.dead_letter import DeadLetterReason, dead_letter_headers, header_map
from streamgen.contracts.registry import registry_client
from streamgen.contracts.request import GenerationRequest, Task
from streamgen.contracts.result import (
    GenerationResult,
    ResultError,
    Status,
    StoredImage,
    Timings,
    WorkerIdentity,
)
from streamgen.contracts.schemas import SchemaCatalog, WriterSchema, load_catalog
from streamgen.contracts.validation import validate

__all__ = [
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
]
