"""What an image costs: dollars per 1,000 images from throughput and a GPU-hour price.

Pure arithmetic, so the benchmark report and docs/benchmarks.md's cost table agree.
"""

from __future__ import annotations

import math

__all__ = ["usd_per_1000_images"]

SECONDS_PER_HOUR = 3600.0


def usd_per_1000_images(images_per_s: float, gpu_hour_usd: float) -> float:
    """``gpu_hour_usd`` spread over the images one GPU makes in an hour, times 1,000.

    A GPU busy at ``images_per_s`` makes ``3600 * images_per_s`` images an hour. No images
    (0 or NaN throughput) cost infinitely much; a negative price is a mistake, not a discount.
    """
    if gpu_hour_usd < 0 or math.isnan(gpu_hour_usd):
        raise ValueError(f"gpu_hour_usd must be >= 0, got {gpu_hour_usd}")
    if not images_per_s > 0:  # also NaN
        return math.inf
    return 1000.0 * gpu_hour_usd / (SECONDS_PER_HOUR * images_per_s)
