"""Write randomly initialised diffusers pipelines to disk, with no download of any kind.

The result loads through exactly the code that loads a real checkpoint (``from_pretrained``), so
tests and benchmarks exercise the production path. Each family brings its own writer and
architectures (``families.ARCHS``): tiny ones for tests and the CPU demo, the published ones
(random weights, the real FLOPs) for benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import torch

from streamgen.engine.families import ARCHS, FAMILIES, TINY_ARCHS

__all__ = ["ARCHS", "tiny_arch", "write_model"]


def tiny_arch(family: str, variant: str | None = None) -> str:
    """The tiny architecture of ``family`` (and ``variant``, where the family has several)."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is unknown; choose one of {sorted(FAMILIES)}")
    variants = TINY_ARCHS[family]
    key = variant or next(iter(variants))
    if key not in variants:
        raise ValueError(
            f"variant={variant!r} of {family} is unknown; choose one of {sorted(variants)}"
        )
    return variants[key]


def write_model(
    arch: str,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a random ``arch`` pipeline to ``out_dir`` with ``save_pretrained``; return the path.

    ``device`` only decides where the weights are initialised (``cuda`` is much faster for the
    full-size architectures); the same seed on another device gives other, equally random,
    weights.
    """
    from streamgen.log_routing import quiet_diffusers

    quiet_diffusers()
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} is unknown; choose one of {sorted(ARCHS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return ARCHS[arch](arch, out, device=device, dtype=dtype)
