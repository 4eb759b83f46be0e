"""Image bytes for storage. Called on the worker's output pool, never on the GPU thread."""

from __future__ import annotations

import io

from PIL.Image import Image

__all__ = ["CONTENT_TYPES", "EncodedImage", "encode_image"]

CONTENT_TYPES = {"png": "image/png", "webp": "image/webp"}

EncodedImage = tuple[bytes, str]  # (data, content type)


def encode_image(image: Image, image_format: str) -> EncodedImage:
    if image_format not in CONTENT_TYPES:
        raise ValueError(f"image_format={image_format!r}: expected one of {sorted(CONTENT_TYPES)}")
    buffer = io.BytesIO()
    if image_format == "webp":
        # Lossless: the stored image is the generated image, so its checksum is reproducible.
        image.save(buffer, format="WEBP", lossless=True, quality=100, method=4)
    else:
        image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue(), CONTENT_TYPES[image_format]
