"""``streamgen model``: make random-weight pipelines so nothing needs a download."""

from __future__ import annotations

from pathlib import Path

import click

from streamgen.engine.families import ARCHS, TINY_ARCHS

_DTYPES = ("float32", "float16", "bfloat16")
# Read from the families' table, so the help names every family's variants as they are added.
_VARIANTS = "; ".join(f"{family}: {', '.join(variants)}" for family, variants in TINY_ARCHS.items())
_OUT = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the pipeline to (diffusers save_pretrained layout).",
)


@click.group()
def model() -> None:
    """Diffusion models for streamgen."""


@model.command("init")
@click.option(
    "--arch",
    type=click.Choice(sorted(ARCHS)),
    required=True,
    help="tiny*: CPU tests and demo; sd15 / sdxl / flux-dev / flux-schnell / sd3.5-large / "
    "sd3.5-medium / ...: the published architectures (random weights).",
)
@_OUT
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Where to initialise the weights; cuda is much faster for sd15 and sdxl.",
)
@click.option("--dtype", type=click.Choice(_DTYPES), default="float32", show_default=True)
def init(arch: str, out_dir: Path, device: str, dtype: str) -> None:
    """Write a randomly initialised ARCH pipeline to OUT (its images are noise).

    Point a worker at it with --model NAME=OUT; for real images, use a real checkpoint
    directory or hub id instead (e.g. --model sd15=stable-diffusion-v1-5/stable-diffusion-v1-5).
    """
    _write(arch, out_dir, device, dtype)


@model.command("write")
@click.option(
    "--family",
    type=click.Choice(sorted(TINY_ARCHS)),
    required=True,
    help="The model family whose tiny random pipeline to write (CPU tests and demos).",
)
@click.option(
    "--variant",
    default=None,
    help=f"Within the family, its first variant by default: {_VARIANTS}. Presets are not "
    "variants: SD3.5 Large Turbo is large's architecture (load it as NAME=DIR#large-turbo), and "
    "SDXL-Turbo, -Lightning and DMD2 are sdxl's (NAME=DIR#turbo, #lightning-4step, #dmd2, ...).",
)
@_OUT
def write(family: str, variant: str | None, out_dir: Path) -> None:
    """Write a tiny random pipeline of FAMILY to OUT, its own small tokenizers included.

    For the published architectures (benchmarks), use `model init --arch` (its --help lists
    them).
    """
    from streamgen.engine.model_init import tiny_arch

    try:
        arch = tiny_arch(family, variant)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--variant") from None
    _write(arch, out_dir, "cpu", "float32")


def _write(arch: str, out_dir: Path, device: str, dtype: str) -> None:
    import torch

    from streamgen.engine.model_init import write_model

    if out_dir.exists() and any(out_dir.iterdir()):
        raise click.BadParameter(f"{out_dir} exists and is not empty", param_hint="--out")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.BadParameter(f"{device!r}: CUDA is not available", param_hint="--device")
    written = write_model(arch, out_dir, device=device, dtype=getattr(torch, dtype))
    click.echo(f"wrote {arch} pipeline (random weights) to {written}")
