"""``engine.warmup_shapes``: the request shapes a worker compiles and captures before it joins.

Each entry is ``WIDTHxHEIGHTxSTEPS``, optionally followed by ``:SCHEDULER`` and ``@MODEL``
(``512x512x30``, ``1024x1024x30:euler@sdxl``); the scheduler defaults to
``engine.default_scheduler`` and the model to ``default``. A worker that warms these up before
it subscribes serves its first requests of these shapes at full speed instead of stalling its
partitions for a minute or more of compilation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from streamgen.engine.types import Shape
from streamgen.errors import ConfigError
from streamgen.settings import WarmupShape

if TYPE_CHECKING:
    from streamgen.settings import Settings

__all__ = ["SETTING", "parse_entry", "parse_warmup_shapes", "warmup_shapes"]

SETTING = "engine.warmup_shapes"

_ENTRY = re.compile(
    r"^(?P<width>\d+)x(?P<height>\d+)x(?P<steps>\d+)"
    r"(?::(?P<scheduler>[a-z0-9_]+))?(?:@(?P<model>[A-Za-z0-9_.-]+))?$"
)
# The latent grid is 1/8 of the image for every family; a family may need more (FLUX.1: 16,
# checked by the engine when it warms the shape up).
_MULTIPLE = 8


def parse_entry(raw: str) -> WarmupShape:
    """One entry's grammar; ConfigError naming ``engine.warmup_shapes`` and the entry. What it
    names is checked against the other settings by :func:`warmup_shapes`."""
    match = _ENTRY.match(raw.strip())
    if match is None:
        raise ConfigError(
            SETTING, f"{raw!r} is not WIDTHxHEIGHTxSTEPS[:SCHEDULER][@MODEL], e.g. 512x512x30"
        )
    width, height, steps = (int(match[k]) for k in ("width", "height", "steps"))
    return WarmupShape(width, height, steps, match["scheduler"] or "", match["model"] or "default")


def parse_warmup_shapes(
    entries: Iterable[str | WarmupShape],
    *,
    default_scheduler: str,
    models: Iterable[str],
    schedulers: Iterable[str],
    max_size: int = 2048,
    max_steps: int = 150,
) -> list[Shape]:
    """Every entry as a Shape, or ConfigError naming ``engine.warmup_shapes`` and the entry."""
    known_models = {*models, "default"}
    known_schedulers = set(schedulers)
    shapes: list[Shape] = []
    for item in entries:
        entry = parse_entry(item) if isinstance(item, str) else item
        raw = _text(entry)
        for name, size in (("width", entry.width), ("height", entry.height)):
            if not _MULTIPLE <= size <= max_size or size % _MULTIPLE:
                raise ConfigError(
                    SETTING,
                    f"{raw!r}: {name} {size} must be a multiple of {_MULTIPLE} "
                    f"in {_MULTIPLE}..{max_size}",
                )
        if not 1 <= entry.steps <= max_steps:
            raise ConfigError(SETTING, f"{raw!r}: steps {entry.steps} not in 1..{max_steps}")
        scheduler = entry.scheduler or default_scheduler
        if scheduler not in known_schedulers:
            raise ConfigError(
                SETTING, f"{raw!r}: scheduler {scheduler!r} not in {sorted(known_schedulers)}"
            )
        if entry.model not in known_models:
            raise ConfigError(
                SETTING, f"{raw!r}: model {entry.model!r} not in {sorted(known_models)}"
            )
        shape = Shape(entry.model, "txt2img", entry.width, entry.height, entry.steps, scheduler)
        if shape not in shapes:
            shapes.append(shape)
    return shapes


def _text(entry: WarmupShape) -> str:
    """The entry as an operator writes it, for messages."""
    scheduler = f":{entry.scheduler}" if entry.scheduler else ""
    model = "" if entry.model == "default" else f"@{entry.model}"
    return f"{entry.width}x{entry.height}x{entry.steps}{scheduler}{model}"


def warmup_shapes(settings: Settings) -> list[Shape]:
    """The configured entries, checked against the models, schedulers and request bounds."""
    from streamgen.engine.schedulers import SCHEDULERS

    return parse_warmup_shapes(
        settings.engine.warmup_shapes,
        default_scheduler=settings.engine.default_scheduler,
        models=settings.engine.models,
        schedulers=SCHEDULERS,
        max_size=settings.validation.max_size,
        max_steps=settings.validation.max_steps,
    )
