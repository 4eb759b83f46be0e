"""Admission of a polled record: decode its bytes, validate the request (stage 2 of the loop).

Pure apart from the decoder and the clock it is given: a record either becomes a
GenerationRequest, or is :class:`Rejected` with the :class:`~streamgen.errors.InvalidRecord`
that names what was wrong (→ dead letter), or raises a
:class:`~streamgen.errors.TransientError` (schema registry unreachable → retried later, never
dead-lettered).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import InitImagePrefixes, LoadedModelRules, validate
from streamgen.errors import DecodeError, InvalidRecord
from streamgen.settings import ValidationBounds
from streamgen.worker.work_item import SourceRecord

__all__ = ["Intake", "Rejected", "RequestCheck"]

Decode = Callable[[bytes], GenerationRequest]
Validate = Callable[[GenerationRequest], GenerationRequest]

# Producers key records by request id; for bytes we cannot decode, a key of this form is
# still trusted as the request id so the caller gets a FAILED result instead of silence.
_REQUEST_ID_KEY = re.compile(r"[A-Za-z0-9._-]{1,128}")


class Rejected(Exception):
    """A record that can never succeed. ``request`` is what a FAILED result is about, if known."""

    def __init__(self, error: InvalidRecord, request: GenerationRequest | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.request = request


@dataclass(frozen=True)
class RequestCheck:
    """The worker's ``validate``: a request against the fleet's bounds, its models and
    schedulers, the allowed init-image prefixes and what the model it names can honour
    (``contracts.validation.validate``), with deadlines read from ``clock``."""

    bounds: ValidationBounds
    models: frozenset[str]
    schedulers: Collection[str]
    init_images: InitImagePrefixes
    model_rules: LoadedModelRules | None
    clock: Callable[[], datetime]

    def __call__(self, request: GenerationRequest) -> GenerationRequest:
        return validate(
            request,
            self.bounds,
            models=self.models,
            schedulers=self.schedulers,
            now=self.clock(),
            init_images=self.init_images,
            model_rules=self.model_rules,
        )


@dataclass(frozen=True)
class Intake:
    decode: Decode
    validate: Validate

    def admit(self, record: SourceRecord) -> GenerationRequest:
        try:
            if record.value is None:
                raise DecodeError(
                    f"record {record.topic}/{record.partition}@{record.offset} has no value "
                    "(tombstone): expected an Avro GenerationRequest"
                )
            request = self.decode(record.value)
        except InvalidRecord as exc:
            raise Rejected(exc, _request_named_by_key(record)) from exc
        try:
            return self.validate(request)
        except InvalidRecord as exc:
            raise Rejected(exc, request) from exc


def _request_named_by_key(record: SourceRecord) -> GenerationRequest | None:
    if record.key is None:
        return None
    try:
        key = record.key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not _REQUEST_ID_KEY.fullmatch(key):
        return None
    # model "": nothing about the request is known beyond its id.
    return GenerationRequest(request_id=key, prompt="", model="")
