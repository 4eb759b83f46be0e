"""Where a batch of requests comes from: flags, a JSONL file, or a CSV catalog and a template.

Pure functions over text: they never touch Kafka, and every mistake is an :class:`InputError`
that says where it is (``catalog.csv:7``) and what is wrong, before anything is published.
"""

from __future__ import annotations

import csv
import json
import string
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamgen.contracts.codec import REQUEST_CONTRACT, AvroCodec, EncodeError
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import validate
from streamgen.errors import InvalidRequest
from streamgen.settings import ValidationBounds
from streamgen.submit.fields import FIELDS, FieldError, from_json, from_text

__all__ = [
    "InputError",
    "Located",
    "check_all",
    "from_csv",
    "from_flags",
    "from_jsonl",
    "new_request_id",
]

NewId = Callable[[], str]
# Enough errors for a user to see the pattern without scrolling through a whole catalog.
MAX_REPORTED_ERRORS = 20


class InputError(ValueError):
    """A request could not be built or is invalid; ``where`` is ``file:line`` or a flag."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True, slots=True)
class Located:
    """A request and where it was written, for messages that point at the right line."""

    request: GenerationRequest
    where: str


def new_request_id() -> str:
    return uuid.uuid4().hex


def _build(
    values: Mapping[str, Any],
    *,
    where: str,
    defaults: Mapping[str, Any],
    new_id: NewId,
    now: datetime,
) -> Located:
    """Defaults < row values; request_id generated and created_at stamped when absent."""
    merged = {**defaults, **values}
    merged["metadata"] = {**defaults.get("metadata", {}), **values.get("metadata", {})}
    if merged.get("request_id") is None:
        merged["request_id"] = new_id()
    if merged.get("created_at") is None:
        merged["created_at"] = now
    if "prompt" not in merged:
        raise InputError(where, "missing field 'prompt'")
    return Located(GenerationRequest(**merged), where)


def from_flags(
    fields: Mapping[str, Any], *, count: int, new_id: NewId, now: datetime
) -> list[Located]:
    """``count`` requests from command-line fields.

    With ``seed`` S, request i gets seed S + i·num_images so no two requests draw the same
    images; with an explicit ``request_id``, ``count`` must be 1 (ids are the dedup key).
    """
    if count < 1:
        raise InputError("--count", f"must be at least 1, got {count}")
    if fields.get("request_id") is not None and count != 1:
        raise InputError("--request-id", f"names one request, but --count is {count}")
    if not fields.get("prompt"):
        raise InputError("--prompt", "required unless --jsonl or --csv is given")
    out = []
    for i in range(count):
        values = dict(fields)
        seed = values.get("seed")
        if seed is not None:
            values["seed"] = seed + i * int(values.get("num_images", 1))
        where = "flags" if count == 1 else f"flags (request {i + 1} of {count})"
        out.append(_build(values, where=where, defaults={}, new_id=new_id, now=now))
    return out


def from_jsonl(
    lines: Iterable[str],
    *,
    source: str,
    defaults: Mapping[str, Any],
    new_id: NewId,
    now: datetime,
) -> list[Located]:
    """One request object per line; blank lines are skipped; flags give the defaults."""
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(where, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(raw, dict):
            raise InputError(where, f"expected a JSON object, got {type(raw).__name__}")
        try:
            values = {name: from_json(name, value, now) for name, value in raw.items()}
        except FieldError as exc:
            raise InputError(where, str(exc)) from None
        out.append(_build(values, where=where, defaults=defaults, new_id=new_id, now=now))
    if not out:
        raise InputError(source, "no requests (the file is empty)")
    return out


def template_columns(template: str) -> list[str]:
    """The column names a prompt template uses; only plain ``{column}`` placeholders."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError("--template", f"{exc}: {template!r}") from None
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise InputError(
                "--template", f"placeholder {{{name}}} is not a column name (use {{column}})"
            )
        names.append(name)
    if not names:
        raise InputError("--template", f"uses no column: {template!r}")
    return names


def from_csv(
    lines: Iterable[str],
    *,
    source: str,
    template: str | None,
    defaults: Mapping[str, Any],
    new_id: NewId,
    now: datetime,
) -> list[Located]:
    """One request per row. The prompt is the template filled from the row (or a ``prompt``
    column); columns named like request fields set them; every other column goes to metadata.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header:
        raise InputError(source, "no header row (the file is empty)")
    header = [column.strip() for column in header]
    used = _check_header(header, source=source, template=template)
    out = []
    for row in reader:
        where = f"{source}:{reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(where, f"has {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(header, row, strict=True))
        values: dict[str, Any] = {"metadata": {}}
        try:
            for column, cell in cells.items():
                if column in used:
                    continue
                if column in FIELDS:
                    if cell != "":
                        values[column] = from_text(column, cell, now)
                else:
                    values["metadata"][column] = cell
        except FieldError as exc:
            raise InputError(where, str(exc)) from None
        if template is not None:
            values["prompt"] = template.format_map({c: cells[c] for c in used})
        out.append(_build(values, where=where, defaults=defaults, new_id=new_id, now=now))
    if not out:
        raise InputError(source, "no requests (only a header row)")
    return out


def _check_header(header: Sequence[str], *, source: str, template: str | None) -> set[str]:
    """The columns the template consumes; refuses duplicates and missing template columns."""
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise InputError(f"{source}:1", f"column {column!r} appears twice")
        seen.add(column)
    if "metadata" in seen:
        raise InputError(
            f"{source}:1", "column 'metadata' is reserved: every other column goes to metadata"
        )
    if template is None:
        if "prompt" not in seen:
            raise InputError(f"{source}:1", "no 'prompt' column; give one or pass --template")
        return set()
    if "prompt" in seen:
        raise InputError(f"{source}:1", "has a 'prompt' column and --template: use one of them")
    used = template_columns(template)
    missing = [name for name in used if name not in seen]
    if missing:
        raise InputError(
            f"{source}:1",
            f"template column(s) {', '.join(missing)} not in the header ({', '.join(header)})",
        )
    return set(used)


def check_all(
    located: Sequence[Located],
    bounds: ValidationBounds,
    *,
    models: Iterable[str] | None,
    schedulers: Iterable[str] | None,
    now: datetime,
    validate_fields: bool = True,
) -> list[InputError]:
    """Every problem in the batch, each at its line.

    A request must always fit the Avro schema (or it cannot be sent at all); with
    ``validate_fields`` it must also pass the worker's validation and not repeat an id.
    """
    model_names = None if models is None else frozenset(models)
    scheduler_names = None if schedulers is None else frozenset(schedulers)
    # Single-object framing needs no registry: the body, and so the check, is the same.
    schema_check = AvroCodec(REQUEST_CONTRACT, topic="")
    errors: list[InputError] = []
    first_seen: dict[str, str] = {}
    for item in located:
        try:
            schema_check.encode(item.request)
        except EncodeError as exc:
            errors.append(InputError(item.where, str(exc)))
            continue
        if not validate_fields:
            continue
        try:
            validate(item.request, bounds, models=model_names, schedulers=scheduler_names, now=now)
        except InvalidRequest as exc:
            errors.append(InputError(item.where, str(exc)))
        rid = item.request.request_id
        if rid in first_seen:
            errors.append(InputError(item.where, f"request_id {rid!r} repeats {first_seen[rid]}"))
        first_seen.setdefault(rid, item.where)
    return errors
