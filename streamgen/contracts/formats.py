"""The image formats a request may ask for, and what each means for the stored object.

One table owns the facts every other place reads: the format names a request may carry, the
object key's extension, the content type, and whether (and in what range) a quality applies.
Validation names the field and the allowed values from it; the store's encoder and the worker's
object keys read the same entries, so a format added here is accepted, encoded and named in
one step.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FORMATS", "QUALITY_RANGE", "ImageFormat", "OutputFormat", "output_format"]

# JPEG and lossy WebP both take a quality in this range (Pillow's scale for both).
QUALITY_RANGE = (1, 100)


@dataclass(frozen=True, slots=True)
class ImageFormat:
    name: str  # as a request writes it: png | jpeg | webp
    extension: str  # of the object key, without the dot
    content_type: str
    # Lossless formats take no quality. A lossy one uses ``default_quality`` when the request
    # gives none; None there (WebP) means "no quality: lossless".
    takes_quality: bool
    default_quality: int | None


FORMATS: dict[str, ImageFormat] = {
    f.name: f
    for f in (
        ImageFormat("png", "png", "image/png", takes_quality=False, default_quality=None),
        ImageFormat("jpeg", "jpg", "image/jpeg", takes_quality=True, default_quality=90),
        ImageFormat("webp", "webp", "image/webp", takes_quality=True, default_quality=None),
    )
}


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """What one request's images are stored as: a format and its quality (None: lossless, or
    the format's default)."""

    format: ImageFormat
    quality: int | None

    @property
    def lossless(self) -> bool:
        return self.quality is None  # JPEG always has one (its default)


def output_format(name: str, quality: int | None) -> OutputFormat:
    """The :class:`OutputFormat` for an already validated name and quality (a lossy format
    without a quality gets its default)."""
    chosen = FORMATS[name]
    return OutputFormat(chosen, quality if quality is not None else chosen.default_quality)
