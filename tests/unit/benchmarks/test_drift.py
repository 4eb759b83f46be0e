"""benchmarks/drift.py: the drift an image-changing speed path reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.drift import pixel_drift


def test_equal_images_have_no_drift() -> None:
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert pixel_drift([image, image], [image, image]) == {
        "max_pixel_diff": 0.0,
        "mean_pixel_diff": 0.0,
        "psnr_db": math.inf,
    }


def test_drift_counts_every_pixel_of_every_image() -> None:
    reference = [np.zeros((2, 2, 3), np.uint8)] * 2
    # One channel of one pixel of one image off by 10 levels (uint8 must not wrap around).
    shifted = np.zeros((2, 2, 3), np.uint8)
    shifted[0, 0, 0] = 10
    drift = pixel_drift([reference[0], shifted], reference)
    assert drift["max_pixel_diff"] == 10.0
    assert drift["mean_pixel_diff"] == pytest.approx(10 / 24)
    assert drift["psnr_db"] == pytest.approx(10 * math.log10(255**2 / (100 / 24)))
    assert pixel_drift(reference, [reference[0], shifted])["max_pixel_diff"] == 10.0


def test_unpaired_images_are_refused() -> None:
    with pytest.raises(ValueError, match="need pairs"):
        pixel_drift([np.zeros((2, 2, 3))], [])
