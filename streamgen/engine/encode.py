"""Image bytes for storage, made on a thread pool so the GPU never waits on PNG compression."""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from PIL.Image import Image

__all__ = ["CONTENT_TYPES", "EncodedImage", "ImageEncoder", "encode_image"]

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


class ImageEncoder:
    """Encodes images on ``threads`` worker threads (PIL releases the GIL while compressing)."""

    def __init__(self, *, threads: int, image_format: str = "png") -> None:
        if threads < 1:
            raise ValueError(f"threads={threads}: need at least 1")
        if image_format not in CONTENT_TYPES:
            raise ValueError(
                f"image_format={image_format!r}: expected one of {sorted(CONTENT_TYPES)}"
            )
        self._format = image_format
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="encode")

    def submit(self, images: Sequence[Image]) -> list[Future[EncodedImage]]:
        return [self._pool.submit(encode_image, image, self._format) for image in images]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ImageEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
