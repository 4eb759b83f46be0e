"""The request's fields as a producer writes them: JSON values or text (CSV cells, flags).

Types come from :class:`GenerationRequest` itself, so a field added to the contract is
accepted here without a second list to keep in step. Conversion only checks types; ranges
are :func:`streamgen.contracts.validate`'s job, so both sides give the same message.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from streamgen.contracts.request import Adapter, GenerationRequest

__all__ = ["FIELDS", "FieldError", "adapter_flag", "from_json", "from_text", "parse_timestamp"]

FIELDS: dict[str, Any] = typing.get_type_hints(GenerationRequest)
_RELATIVE = re.compile(r"\+(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FieldError(ValueError):
    """One field's value has the wrong type or form; the message names field and value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0], True
    return kind, False


def _kind_name(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    if typing.get_origin(kind) is dict:
        return "an object of string values"
    if typing.get_origin(kind) is tuple:
        return 'a list of {"uri": ..., "scale": ...} objects'
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        datetime: "an ISO 8601 timestamp with a timezone, +N[s|m|h|d], or epoch milliseconds",
    }.get(kind, str(kind))


def _known(name: str) -> Any:
    try:
        return FIELDS[name]
    except KeyError:
        raise FieldError(name, f"unknown field; known fields: {', '.join(FIELDS)}") from None


def parse_timestamp(field: str, value: str | int, now: datetime) -> datetime:
    """ISO 8601 with a timezone, ``+30s``/``+5m``/``+2h``/``+1d`` from ``now``, or epoch ms."""
    if isinstance(value, int):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise FieldError(field, f"{value} ms since the epoch is out of range") from None
    relative = _RELATIVE.fullmatch(value.strip())
    if relative:
        amount, unit = relative.groups()
        return now + timedelta(seconds=float(amount) * _UNIT_SECONDS[unit])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise FieldError(field, f"{value!r} is not {_kind_name(datetime)}") from None
    if parsed.tzinfo is None:
        raise FieldError(field, f"{value!r} has no timezone; add Z or +HH:MM")
    return parsed


def from_json(name: str, value: Any, now: datetime) -> Any:
    """A JSON value (as ``json.loads`` gives it) for field ``name``, checked against its type."""
    kind, optional = _unwrap_optional(_known(name))
    if value is None:
        if optional:
            return None
        raise FieldError(name, f"must not be null; expected {_kind_name(kind)}")
    wrong = FieldError(name, f"expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
    if typing.get_origin(kind) is Literal:
        if value not in typing.get_args(kind):
            raise wrong
        return value
    if typing.get_origin(kind) in (dict, tuple):
        return _collection(name, kind, value, wrong)
    if kind is datetime:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise wrong
        return parse_timestamp(name, value, now)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    # bool is an int in Python, but `true` for a width is a mistake worth naming
    if isinstance(value, bool) or not isinstance(value, kind):
        raise wrong
    return value


def _collection(name: str, kind: Any, value: Any, wrong: FieldError) -> Any:
    """metadata (a map of strings) or adapters (the one list of records)."""
    if typing.get_origin(kind) is dict:
        if not isinstance(value, Mapping):
            raise wrong
        return _string_map(name, value)
    if not isinstance(value, list | tuple):
        raise wrong
    return tuple(_adapter(f"{name}[{i}]", item) for i, item in enumerate(value))


def _adapter(name: str, value: Any) -> Adapter:
    if not isinstance(value, Mapping) or not set(value) <= {"uri", "scale"}:
        raise FieldError(name, f'expected {{"uri": ..., "scale": ...}}, got {value!r}')
    uri, scale = value.get("uri"), value.get("scale", 1.0)
    if not isinstance(uri, str):
        raise FieldError(f"{name}.uri", f"expected a string, got {uri!r}")
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise FieldError(f"{name}.scale", f"expected a number, got {scale!r}")
    return Adapter(uri, float(scale))


def adapter_flag(text: str) -> Adapter:
    """``--adapter URI[@SCALE]``: what follows the last ``@`` is the scale, a finite number,
    unless the text ends in ``.safetensors`` or a ``/`` follows that ``@`` (an ``@`` inside
    the URI). A URI ending otherwise in ``@…`` takes its scale written after it (``URI@1``):
    a mistyped scale is refused, never read as part of the URI."""
    uri, at, scale = text.rpartition("@")
    if not at or "/" in scale or text.lower().endswith(".safetensors"):
        return Adapter(text)
    try:
        value = float(scale)
    except ValueError:
        value = math.nan
    if not uri or not math.isfinite(value):
        raise FieldError(
            "adapters",
            f"{text!r}: the scale after the last '@' must be a finite number, got {scale!r} "
            f"(a URI that itself ends in '@...' takes its scale after it: '{text}@1')",
        )
    return Adapter(uri, value)


def _string_map(name: str, value: Mapping[Any, Any]) -> dict[str, str]:
    for key, item in value.items():
        if not isinstance(item, str):
            raise FieldError(
                f"{name}.{key}", f"values must be strings, got {type(item).__name__} {item!r}"
            )
    return dict(value)


def from_text(name: str, text: str, now: datetime) -> Any:
    """A text value (a CSV cell, a flag) for field ``name``; empty means null where allowed."""
    kind, optional = _unwrap_optional(_known(name))
    if typing.get_origin(kind) is dict:
        raise FieldError(name, "cannot be given as one text value")
    if typing.get_origin(kind) is tuple:  # adapters, as JSON in a CSV cell
        if not text.strip():
            return ()
        try:
            return from_json(name, json.loads(text), now)
        except ValueError as exc:
            if isinstance(exc, FieldError):
                raise
            raise FieldError(name, f"expected a JSON list, got {text!r}") from None
    if text == "" and optional:
        return None
    if kind is str:
        return text
    if kind is int:
        try:
            return int(text.strip())
        except ValueError:
            raise FieldError(name, f"expected an integer, got {text!r}") from None
    if kind is float:
        try:
            return float(text.strip())
        except ValueError:
            raise FieldError(name, f"expected a number, got {text!r}") from None
    if kind is datetime:
        return parse_timestamp(name, text, now)
    return from_json(name, text.strip(), now)
