"""Image encoding: PNG keeps every pixel at every setting, JPEG and WebP are what was asked."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from streamgen.contracts.formats import FORMATS, output_format
from streamgen.store.encode import encode_image, format_named
from streamgen.store.png import encode_png


def a_photo(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Smooth gradients with grain and a hard edge: what PNG filters and deflate meet."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    base = (x[..., None] * 200 // max(width, 1) + y[..., None] * 50 // max(height, 1)) % 256
    pixels = (
        base + rng.integers(-4, 5, (height, width, channels)) + 40 * (x > width // 2)[..., None]
    )
    array = np.clip(pixels, 0, 255).astype(np.uint8)
    return Image.fromarray(array[..., 0] if mode == "L" else array, mode)


def idat(png: bytes) -> bytes:
    """The concatenated IDAT data, each chunk's CRC checked on the way."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data, at = b"", 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, body = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        if kind == b"IDAT":
            data += body
        at += 12 + length
    return data


@pytest.mark.parametrize("level", range(10))
@pytest.mark.parametrize("strategy", [zlib.Z_RLE, zlib.Z_DEFAULT_STRATEGY])
def test_png_pixels_are_identical_at_every_level(level: int, strategy: int) -> None:
    # 512x512 RGB is split into strips deflated in parallel: the joined stream must be whole.
    image = a_photo(512, 512)
    png = encode_png(image, level=level, strategy=strategy)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(image))
    # zlib checks the Adler-32 over every strip, which a reader stopping early would not.
    rows = zlib.decompress(idat(png))
    assert len(rows) == 512 * (1 + 512 * 3)


@pytest.mark.parametrize(
    ("size", "mode"),
    [
        ((1, 1), "RGB"),
        ((64, 1), "RGB"),
        ((1, 300), "RGB"),
        ((777, 333), "RGB"),
        ((96, 64), "L"),
        ((640, 480), "RGBA"),
        ((1024, 1024), "RGB"),
    ],
)
def test_png_keeps_every_pixel_whatever_the_shape(size: tuple[int, int], mode: str) -> None:
    image = a_photo(*size, mode=mode)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.mode == mode and decoded.size == size
    assert np.array_equal(np.asarray(decoded), np.asarray(image))
    zlib.decompress(idat(encode_png(image)))


def test_png_is_deterministic_and_refuses_a_mode_it_cannot_write() -> None:
    image = a_photo(256, 256)
    assert encode_png(image) == encode_png(image)
    with pytest.raises(ValueError, match="mode 'CMYK'"):
        encode_png(image.convert("CMYK"))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_gets_its_content_type_and_decodes(name: str) -> None:
    image = a_photo(128, 96)
    data, content_type = encode_image(image, format_named(name))
    assert content_type == FORMATS[name].content_type
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[name]
    assert decoded.size == image.size


def test_lossless_formats_keep_the_pixels_and_lossy_ones_follow_the_quality() -> None:
    image = a_photo(256, 256)
    pixels = np.asarray(image)
    for lossless in (format_named("png"), format_named("webp")):
        data, _ = encode_image(image, lossless)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), pixels)
    for name in ("jpeg", "webp"):
        low, _ = encode_image(image, output_format(name, 20))
        high, _ = encode_image(image, output_format(name, 95))
        assert len(low) < len(high)
        decoded = np.asarray(Image.open(io.BytesIO(high)).convert("RGB")).astype(int)
        assert np.abs(decoded - pixels).mean() < 3  # close, not equal: lossy


def test_jpeg_without_a_quality_uses_its_default_and_says_so() -> None:
    chosen = output_format("jpeg", None)
    assert chosen.quality == FORMATS["jpeg"].default_quality == 90
    assert not chosen.lossless and output_format("webp", None).lossless


def test_an_unknown_default_format_is_named() -> None:
    with pytest.raises(ValueError, match="image_format='gif'"):
        format_named("gif")
