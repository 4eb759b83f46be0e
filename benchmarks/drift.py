"""How far one set of images is from another: an image-changing speed path (``engine.fp8_linear``)
reports this against the default path's images for the same requests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["pixel_drift"]

PEAK = 255.0  # 8-bit images


def pixel_drift(images: Sequence[Any], reference: Sequence[Any]) -> dict[str, float]:
    """Max and mean absolute difference in levels of 255, and PSNR in dB (over all pixels of
    all images: infinite when they are equal), of ``images`` against ``reference``."""
    if len(images) != len(reference) or not images:
        raise ValueError(f"{len(images)} images against {len(reference)}: need pairs")
    diffs = [
        np.asarray(a, np.float64) - np.asarray(b, np.float64)
        for a, b in zip(images, reference, strict=True)
    ]
    flat = np.concatenate([d.ravel() for d in diffs])
    mse = float(np.mean(flat**2))
    return {
        "max_pixel_diff": float(np.abs(flat).max()),
        "mean_pixel_diff": float(np.abs(flat).mean()),
        "psnr_db": math.inf if mse == 0 else 10 * math.log10(PEAK**2 / mse),
    }
