"""Is a decoded request something the fleet can generate? Pure: no I/O, the clock is a parameter.

Every rule raises :class:`~streamgen.errors.InvalidRequest` (or its subclass
:class:`~streamgen.errors.DeadlineExpired`) naming the field, the value and what is allowed;
nothing is silently clamped or fixed. The worker runs this after decoding (a failure is a dead
letter), and ``streamgen submit`` runs it before publishing, with the same default bounds.

Two kinds of rule: the fleet's (``ValidationBounds``: sizes a multiple of 8, step and guidance
ranges, ...), which anyone can check, and those of the model a request names (a size multiple
of 16, a step range, no negative prompt, ...), which only a worker that has loaded that model
knows: it passes them in as :class:`LoadedModelRules`, so a request its model cannot honour is
refused here, before it takes a place in a batch, rather than by the engine at generate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, get_args

from streamgen.contracts.formats import FORMATS, QUALITY_RANGE
from streamgen.contracts.request import Adapter, GenerationRequest, Task
from streamgen.errors import DeadlineExpired, InvalidRequest
from streamgen.settings import ValidationBounds

__all__ = [
    "MAX_REQUEST_ID_CHARS",
    "MAX_SEED",
    "REQUEST_ID_PATTERN",
    "TENANT_PATTERN",
    "LoadedModelRules",
    "ModelRules",
    "clip",
    "deadline_expired",
    "validate",
]

# Object keys derive from request_id: only characters that are safe in an S3 key and a file
# name, and never "." or ".." alone (a file:// store would climb out of its directory).
MAX_REQUEST_ID_CHARS = 128
REQUEST_ID_PATTERN = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID_CHARS}}}")
# A tenant names a metrics label and a settings key: short, and nothing a label or a
# NAME=WEIGHT pair would have to escape. "" (the default tenant) is allowed as well.
TENANT_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The seed travels as an Avro long and image i uses seed + i; torch.Generator.manual_seed
# takes up to 2**64-1, so the signed 64-bit range is the binding limit.
MAX_SEED = 2**63 - 1
TASKS: tuple[str, ...] = get_args(Task)


class Located(Protocol):
    """A place once normalised (:class:`streamgen.store.prefixes.ObjectLocation`): its ``uri``
    is one spelling for every way of writing the same object."""

    @property
    def uri(self) -> str: ...


class InitImagePrefixes(Protocol):
    """Where an init image may be read from: :class:`streamgen.store.prefixes.AllowedPrefixes`
    (the contracts sit below the store and never import it)."""

    def locate(self, uri: object) -> Located:
        """Raise :class:`InvalidRequest` unless ``uri`` lies under an allowed root."""
        ...


class ModelRules(Protocol):
    """What one loaded model can honour: :class:`streamgen.engine.families.FamilyRules` (the
    contracts sit below the engine and never import it)."""

    def scheduler_for(self, requested: str | None, configured_default: str) -> str:
        """The scheduler a request runs with on this model."""
        ...

    def check(self, request: GenerationRequest, scheduler: str) -> None:
        """Raise :class:`InvalidRequest` naming the first field this model cannot honour."""
        ...


@dataclass(frozen=True)
class LoadedModelRules:
    """The rules of every model a worker has loaded, by the names requests use ("default"
    included), and the fleet's default scheduler. The engine resolves a request's shape with the
    same object, so a request that passes ``check`` here is never refused by its family at
    generate."""

    by_model: Mapping[str, ModelRules]
    default_scheduler: str

    def scheduler_for(self, request: GenerationRequest) -> str:
        """The scheduler ``request`` runs with: its own, else the fleet's default where its
        model's family takes it, else the family's own (flow-matching models have no DPM++ 2M)."""
        rules = self.by_model.get(request.model)
        if rules is None:
            return request.scheduler or self.default_scheduler
        return rules.scheduler_for(request.scheduler, self.default_scheduler)

    def check(self, request: GenerationRequest) -> None:
        """Raise InvalidRequest naming the first field the model ``request`` names cannot
        honour; a model no worker loaded is left to ``validate``'s ``models`` check."""
        rules = self.by_model.get(request.model)
        if rules is not None:
            rules.check(request, self.scheduler_for(request))


def validate(
    request: GenerationRequest,
    bounds: ValidationBounds,
    *,
    models: Collection[str] | None,
    schedulers: Collection[str] | None,
    now: datetime,
    init_images: InitImagePrefixes | None = None,
    model_rules: LoadedModelRules | None = None,
) -> GenerationRequest:
    """Return ``request`` unchanged if every field is in range, else raise InvalidRequest.

    ``models`` and ``schedulers`` are the names this fleet serves (the worker passes its
    configured models, "default" included), and ``init_images`` where an img2img request may
    point (``store.init_image_prefixes``), and ``model_rules`` what each loaded model can honour;
    ``None`` skips that check, for a producer that does not know the fleet's configuration or
    its models. ``now`` must be timezone-aware.
    """
    if now.tzinfo is None:
        raise ValueError("validate(now=...) needs a timezone-aware datetime")
    _check_request_id(request.request_id)
    _check_text(request, bounds)
    _check_model(request, models, schedulers)
    _check_task(request, init_images)
    _check_adapters(request, bounds, init_images)
    _check_image(request, bounds)
    _check_output(request)
    if request.tenant and not TENANT_PATTERN.fullmatch(request.tenant):
        raise InvalidRequest("tenant", request.tenant, "1..64 characters from A-Z a-z 0-9 . _ -")
    _check_sampling(request, bounds)
    # After the fleet's checks: the family's rules compare fields already known to be numbers.
    if model_rules is not None:
        model_rules.check(request)
    _check_times(request, now)
    _check_metadata(request, bounds)
    return request


def _check_request_id(request_id: Any) -> None:
    allowed = f"1..{MAX_REQUEST_ID_CHARS} characters from A-Z a-z 0-9 . _ -, not only dots"
    if (
        not isinstance(request_id, str)
        or not REQUEST_ID_PATTERN.fullmatch(request_id)
        or set(request_id) == {"."}
    ):
        raise InvalidRequest("request_id", request_id, allowed)


def _check_text(request: GenerationRequest, b: ValidationBounds) -> None:
    if not isinstance(request.prompt, str) or not request.prompt.strip():
        raise InvalidRequest("prompt", request.prompt, "must contain non-whitespace text")
    for name in ("prompt", "negative_prompt"):
        text = getattr(request, name)
        if not isinstance(text, str):
            raise InvalidRequest(name, text, "a string")
        if len(text) > b.max_prompt_chars:
            raise InvalidRequest(
                name, clip(text), f"at most {b.max_prompt_chars} characters (got {len(text)})"
            )


def _check_model(
    request: GenerationRequest,
    models: Collection[str] | None,
    schedulers: Collection[str] | None,
) -> None:
    if models is not None and request.model not in models:
        raise InvalidRequest("model", request.model, f"one of {_names(models)}")
    if (
        request.scheduler is not None
        and schedulers is not None
        and request.scheduler not in schedulers
    ):
        raise InvalidRequest(
            "scheduler", request.scheduler, f"one of {_names(schedulers)}, or null"
        )


def _check_task(request: GenerationRequest, init_images: InitImagePrefixes | None) -> None:
    if request.task not in TASKS:
        raise InvalidRequest("task", request.task, f"one of {', '.join(TASKS)}")
    uri = request.init_image_uri
    if request.task == "img2img" and (not isinstance(uri, str) or not uri.strip()):
        raise InvalidRequest("init_image_uri", uri, "required when task is img2img")
    if request.task == "img2img" and init_images is not None:
        init_images.locate(uri)  # lexical only: symlinks are resolved where the image is read
    if request.task == "txt2img" and uri is not None:
        raise InvalidRequest("init_image_uri", uri, "must be null when task is txt2img")
    strength = _number("strength", request.strength)
    if not 0.0 < strength <= 1.0:
        raise InvalidRequest("strength", strength, "in (0, 1]")


def _check_adapters(
    request: GenerationRequest, b: ValidationBounds, prefixes: InitImagePrefixes | None
) -> None:
    """Count, place and scale of each adapter; whether its file exists and fits the model is
    known only where it is read (``streamgen.engine.adapters``)."""
    adapters = request.adapters
    if not isinstance(adapters, tuple):
        raise InvalidRequest("adapters", adapters, "a list of {uri, scale} records")
    limit = b.max_adapters_per_request
    if len(adapters) > limit:
        count = f"{len(adapters)} adapter{'s' * (len(adapters) > 1)}"
        why = f"at most {limit}" if limit else "none: this fleet serves no adapters"
        raise InvalidRequest("adapters", count, f"{why} (validation.max_adapters_per_request)")
    seen: set[str] = set()
    for i, adapter in enumerate(adapters):
        name = f"adapters[{i}]"
        if not isinstance(adapter, Adapter):
            raise InvalidRequest(name, adapter, "a {uri, scale} record")
        if not isinstance(adapter.uri, str) or not adapter.uri.strip():
            raise InvalidRequest(f"{name}.uri", adapter.uri, "a non-empty object URI")
        place = adapter.uri
        if prefixes is not None:
            try:
                # Lexical, as for init images; spellings of one object share its canonical URI.
                place = prefixes.locate(adapter.uri).uri
            except InvalidRequest as exc:
                raise InvalidRequest(f"{name}.uri", clip(adapter.uri), exc.allowed) from None
        if place in seen:
            why = f"named once per request ({clip(place)})"
            raise InvalidRequest(f"{name}.uri", clip(adapter.uri), why)
        seen.add(place)
        scale = _number(f"{name}.scale", adapter.scale)
        if abs(scale) > b.max_adapter_scale:
            bound = b.max_adapter_scale
            raise InvalidRequest(
                f"{name}.scale", scale, f"in [-{bound}, {bound}] (validation.max_adapter_scale)"
            )


def _check_image(request: GenerationRequest, b: ValidationBounds) -> None:
    for name in ("width", "height"):
        value = _integer(name, getattr(request, name))
        if not b.min_size <= value <= b.max_size or value % 8:
            raise InvalidRequest(name, value, f"a multiple of 8 in [{b.min_size}, {b.max_size}]")
    pixels = request.width * request.height
    if pixels > b.max_pixels:
        raise InvalidRequest(
            "width*height",
            f"{request.width}x{request.height}={pixels}",
            f"at most {b.max_pixels} pixels",
        )
    num_images = _integer("num_images", request.num_images)
    if not 1 <= num_images <= b.max_num_images:
        raise InvalidRequest("num_images", num_images, f"in [1, {b.max_num_images}]")


def _check_output(request: GenerationRequest) -> None:
    name = request.output_format
    if name is not None and name not in FORMATS:
        raise InvalidRequest("output_format", name, f"one of {', '.join(FORMATS)}, or null")
    quality = request.output_quality
    if quality is None:
        return
    quality = _integer("output_quality", quality)
    if name is None:
        # The worker's default format may be lossless: a quality must say what it is for.
        raise InvalidRequest("output_quality", quality, "null unless output_format is set")
    if not FORMATS[name].takes_quality:
        raise InvalidRequest("output_quality", quality, f"null for {name} (lossless)")
    low, high = QUALITY_RANGE
    if not low <= quality <= high:
        raise InvalidRequest("output_quality", quality, f"in [{low}, {high}] for {name}")


def _check_sampling(request: GenerationRequest, b: ValidationBounds) -> None:
    steps = _integer("steps", request.steps)
    if not b.min_steps <= steps <= b.max_steps:
        raise InvalidRequest("steps", steps, f"in [{b.min_steps}, {b.max_steps}]")
    guidance = _number("guidance_scale", request.guidance_scale)
    if not b.min_guidance <= guidance <= b.max_guidance:
        raise InvalidRequest("guidance_scale", guidance, f"in [{b.min_guidance}, {b.max_guidance}]")
    if request.seed is not None:
        seed = _integer("seed", request.seed)
        # image i uses seed + i, and that seed must still fit the result's Avro long
        last = MAX_SEED - (request.num_images - 1)
        if not 0 <= seed <= last:
            raise InvalidRequest(
                "seed", seed, f"in [0, {last}] (2**63-1 minus num_images-1), or null"
            )
    _integer("priority", request.priority)


def _check_times(request: GenerationRequest, now: datetime) -> None:
    for name in ("deadline", "created_at"):
        value = getattr(request, name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise InvalidRequest(name, value, "a timezone-aware timestamp, or null")
    expired = deadline_expired(request, now)
    if expired is not None:
        raise expired


def deadline_expired(
    request: GenerationRequest, now: datetime, *, stage: str = "validate"
) -> DeadlineExpired | None:
    """The one deadline check, made on arrival, when a batch is formed and between denoising
    steps: DeadlineExpired when the request has a deadline not later than ``now``, else None."""
    if request.deadline is not None and request.deadline <= now:
        return DeadlineExpired(request.deadline, now, stage=stage)
    return None


def _check_metadata(request: GenerationRequest, b: ValidationBounds) -> None:
    metadata = request.metadata
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata", metadata, "a map of string to string")
    if len(metadata) > b.max_metadata_entries:
        raise InvalidRequest(
            "metadata", f"{len(metadata)} entries", f"at most {b.max_metadata_entries} entries"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequest(f"metadata[{key!r}]", value, "string keys and string values")


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(name, value, "an integer")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(name, value, "a number")
    if not math.isfinite(value):
        raise InvalidRequest(name, value, "a finite number")
    return float(value)


def _names(names: Collection[str]) -> str:
    return ", ".join(sorted(names)) or "(none configured)"


def clip(text: str) -> str:
    """Long values are shortened in messages: a dead-letter header has a size limit."""
    return text if len(text) <= 80 else f"{text[:77]}..."
