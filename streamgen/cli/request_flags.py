"""The request-field flags of ``streamgen submit``: one per field of the contract, so a field
added to :class:`~streamgen.contracts.request.GenerationRequest` fails
tests/unit/submit/test_cli_input.py until it has one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from streamgen.contracts.formats import FORMATS, QUALITY_RANGE
from streamgen.submit.fields import FIELDS, FieldError, adapter_flag

__all__ = ["FIELD_FLAGS", "request_field_options"]

# created_at is stamped at submit time; metadata and adapters have repeatable flags of their own.
FIELD_FLAGS = [name for name in FIELDS if name not in {"created_at", "metadata", "adapters"}]


def _metadata_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    pairs = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", ctx, param)
        pairs[key] = item
    return pairs


def _adapter_refs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    try:
        return tuple(adapter_flag(value) for value in values)
    except FieldError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def request_field_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The request-field flags, one per field of the contract."""
    fields = [
        click.option("--request-id", help="Only with --count 1 (default: a new uuid4 hex)."),
        click.option("--prompt"),
        click.option("--negative-prompt"),
        click.option("--model", help="Logical model name (worker's --model NAME=…)."),
        click.option("--task", type=click.Choice(["txt2img", "img2img"])),
        click.option("--init-image-uri", help="img2img: s3://bucket/key or file:///path."),
        click.option("--strength", type=float, help="img2img: in (0, 1]."),
        click.option("--width", type=int),
        click.option("--height", type=int),
        click.option("--steps", type=int),
        click.option("--guidance-scale", type=float),
        click.option("--seed", type=int, help="With --count N, request i gets seed+i*num_images."),
        click.option("--num-images", type=int),
        click.option("--scheduler", help="e.g. dpmpp_2m, euler_a, ddim, unipc."),
        click.option("--deadline", help="ISO 8601 with timezone, or +30s / +5m / +2h."),
        click.option("--priority", type=int),
        click.option("--tenant", help="Who the request is for (its GPU share: worker.tenants)."),
        click.option(
            "--output-format",
            type=click.Choice(list(FORMATS)),
            help="What the images are stored as (default: the worker's store.image_format).",
        ),
        click.option(
            "--output-quality",
            type=int,
            help=f"jpeg/webp quality in [{QUALITY_RANGE[0]}, {QUALITY_RANGE[1]}]; "
            "webp without it is lossless, jpeg defaults to 90.",
        ),
        click.option(
            "--metadata",
            multiple=True,
            callback=_metadata_pairs,
            metavar="KEY=VALUE",
            help="Repeatable; passed through to the result.",
        ),
        click.option(
            "--adapter",
            "adapters",
            multiple=True,
            callback=_adapter_refs,
            metavar="URI[@SCALE]",
            help="Repeatable: a LoRA adapter (safetensors under the worker's allowed "
            "prefixes) and its scale (default 1).",
        ),
    ]
    for option in reversed(fields):
        func = option(func)
    return func
