"""Image bytes for storage. Called on the worker's output pool, never on the GPU thread.

PNG goes through :func:`streamgen.store.png.encode_png` (chosen by measurement, see there);
JPEG and WebP through Pillow. WebP without a quality is lossless, so its stored pixels are the
generated ones; JPEG, and WebP with a quality, are what a caller asks for smaller files.
"""

from __future__ import annotations

import io

from PIL.Image import Image

from streamgen.contracts.formats import FORMATS, OutputFormat, output_format
from streamgen.store.png import encode_png

__all__ = ["CONTENT_TYPES", "EncodedImage", "encode_image", "format_named"]

CONTENT_TYPES = {f.name: f.content_type for f in FORMATS.values()}

EncodedImage = tuple[bytes, str]  # (data, content type)

# libwebp's effort (method 0 fastest .. 6 smallest), chosen by scripts/bench-encode on a
# 512x512 photo-like image: lossy method 2 took 16 ms against method 4's 32 (quality 75) for
# 7 % more bytes; lossless method 1 at quality 50 took 87 ms against 532 ms at 100 / 4 for 1 %
# more bytes (docs/benchmarks.md, "Encoding images").
WEBP_LOSSY = {"method": 2}
WEBP_LOSSLESS = {"lossless": True, "quality": 50, "method": 1}


def format_named(name: str) -> OutputFormat:
    """A format at its default quality; ValueError names ``image_format`` and the choices."""
    if name not in FORMATS:
        raise ValueError(f"image_format={name!r}: expected one of {sorted(FORMATS)}")
    return output_format(name, None)


def encode_image(image: Image, output: OutputFormat) -> EncodedImage:
    name = output.format.name
    if name == "png":
        return encode_png(image), output.format.content_type
    buffer = io.BytesIO()
    if name == "jpeg":
        image.save(buffer, format="JPEG", quality=output.quality)
    elif output.lossless:
        image.save(buffer, format="WEBP", **WEBP_LOSSLESS)
    else:
        image.save(buffer, format="WEBP", quality=output.quality, **WEBP_LOSSY)
    return buffer.getvalue(), output.format.content_type
