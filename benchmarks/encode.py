"""Benchmark 6 — what storing an image costs: encode time and bytes per format and setting.

At light load the user waits for the encode (docs/benchmarks.md, "Encoding images"), so the
PNG setting the worker uses was chosen here, by time against size on images that compress like
generated ones. The tiny test model's output, upscaled, does not (it is flat blocks); these
synthetic images are made to:

- ``photo``: a sky gradient, fractal value noise (seven octaves, as terrain or clouds), six
  shaded discs with hard edges and a Gaussian grain of sigma 3/255, as a camera or a diffusion
  model leaves; Pillow's level-6 PNG of it at 512x512 is 420 KB (4.3 bits a channel), about
  what PNGs of real 512x512 generations weigh;
- ``noise``: uniform random pixels, the worst case for every encoder, and what a model with
  random weights (the GPU benchmarks' full-size architectures) gives.

Each setting is timed ``--repeats`` times on one image (median and best); PNG output is decoded
once and compared pixel for pixel with the input. Encoders: Pillow's PNG at each
``compress_level`` (the worker used 6), streamgen's (``streamgen.store.png``: Up filter, zlib
strategy and level, strips of rows deflated in parallel) with its default and alternatives,
JPEG and WebP at several qualities, lossless WebP.

    scripts/bench-encode --sizes 512,1024 --repeats 7 --json encode.json
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import PIL
from PIL import Image

from benchmarks.report import environment, write_json
from streamgen.contracts.formats import OutputFormat, output_format
from streamgen.store.encode import EncodedImage, encode_image
from streamgen.store.png import encode_png

__all__ = ["ENCODERS", "WORKER_ENCODERS", "main", "noise", "photo"]

Encoder = Callable[[Image.Image], bytes]


def _pillow(fmt: str, **params: Any) -> Encoder:
    def encode(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **params)
        return buffer.getvalue()

    return encode


def _streamgen(name: str, quality: int | None) -> Encoder:
    chosen = output_format(name, quality)
    return lambda image: encode_image(image, chosen)[0]


# (encoder, setting) -> how; the worker's own choices go through encode_image, as it calls it.
ENCODERS: dict[tuple[str, str], Encoder] = {
    **{("pillow png", f"level {n}"): _pillow("PNG", compress_level=n) for n in (0, 1, 3, 6, 9)},
    ("pillow png", "level 1, Z_RLE"): _pillow("PNG", compress_level=1, compress_type=zlib.Z_RLE),
    ("streamgen png", "Up, Z_RLE, strips (the worker's)"): _streamgen("png", None),
    ("streamgen png", "Up, Z_RLE, one thread"): lambda im: encode_png(im, max_strips=1),
    ("streamgen png", "Up, level 1, strips"): lambda im: encode_png(
        im, strategy=zlib.Z_DEFAULT_STRATEGY
    ),
    ("streamgen png", "Up, level 6, strips"): lambda im: encode_png(
        im, level=6, strategy=zlib.Z_DEFAULT_STRATEGY
    ),
    ("streamgen png", "Up, stored (level 0), strips"): lambda im: encode_png(im, level=0),
    **{("jpeg", f"quality {q}"): _streamgen("jpeg", q) for q in (50, 75, 90, 95)},
    **{("webp", f"quality {q}, method 2"): _streamgen("webp", q) for q in (50, 75, 90)},
    ("webp", "quality 75, method 4"): _pillow("WEBP", quality=75, method=4),
    ("webp", "lossless (the worker's)"): _streamgen("webp", None),
    ("webp", "lossless, quality 100, method 4"): _pillow(
        "WEBP", lossless=True, quality=100, method=4
    ),
}
LOSSLESS = ("pillow png", "streamgen png")


def _pillow_png_6(image: Image.Image, output: OutputFormat) -> EncodedImage:
    """The worker's encoder before streamgen.store.png: Pillow's PNG at level 6."""
    if output.format.name != "png":
        return encode_image(image, output)
    return _pillow("PNG", compress_level=6)(image), output.format.content_type


# What bench-e2e-broker --encoder may run the worker with: today's, and the one it replaced,
# so the light-load split before and after is measured on one machine in one session.
WORKER_ENCODERS: dict[str, Callable[[Image.Image, OutputFormat], EncodedImage]] = {
    "streamgen": encode_image,
    "pillow-png-6": _pillow_png_6,
}


def photo(size: int, seed: int = 0) -> Image.Image:
    """A deterministic image that compresses like a photograph (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    pixels = np.stack([0.3 + 0.4 * y, 0.5 + 0.3 * y, 0.9 - 0.3 * y], axis=-1)
    amplitude = 0.5
    for cells in (4, 8, 16, 32, 64, 128, 256):
        if cells < size:
            pixels += amplitude * (_value_noise(rng, y, x, cells) - 0.5)
        amplitude *= 0.55
    for _ in range(6):
        cy, cx, r = rng.random(), rng.random(), 0.05 + 0.15 * rng.random()
        inside = (y - cy) ** 2 + (x - cx) ** 2 < r * r
        shade = (1 - ((y - cy) + (x - cx)) / (2 * r))[..., None] * rng.random(3) * 0.6 + 0.2
        pixels = np.where(inside[..., None], shade, pixels)
    pixels += rng.normal(0, 3 / 255, pixels.shape)
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), "RGB")


def _value_noise(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, cells: int) -> Any:
    grid = rng.random((cells + 1, cells + 1, 3))
    y0, x0 = np.floor(y * cells).astype(int), np.floor(x * cells).astype(int)
    fy, fx = (y * cells - y0)[..., None], (x * cells - x0)[..., None]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep: no grid lines
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def noise(size: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


def measure(image: Image.Image, encoder: Encoder, repeats: int) -> tuple[list[float], bytes]:
    encoder(image)  # the first call pays for imports and the strip pool's threads
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        data = encoder(image)
        seconds.append(time.perf_counter() - start)
    return seconds, data


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report: dict[str, Any] = {"benchmark": "image encoding", "settings": vars(args)}
    report["environment"] = environment() | {"pillow": PIL.__version__}
    rows = []
    for size in args.sizes:
        for kind, make in (("photo", photo), ("noise", noise)):
            image = make(size)
            pixels = np.asarray(image)
            for (encoder, setting), encode in ENCODERS.items():
                seconds, data = measure(image, encode, args.repeats)
                if encoder in LOSSLESS:
                    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                    if not np.array_equal(decoded, pixels):
                        raise AssertionError(f"{encoder} {setting}: pixels changed")
                row = {
                    "image": f"{kind} {size}x{size}",
                    "encoder": encoder,
                    "setting": setting,
                    "median_ms": round(1000 * statistics.median(seconds), 2),
                    "best_ms": round(1000 * min(seconds), 2),
                    "bytes": len(data),
                    "bits_per_channel": round(8 * len(data) / pixels.size, 3),
                }
                rows.append(row)
                _print(row)
    report["rows"] = rows
    write_json(args.json, report)
    return 0


def _print(row: dict[str, Any]) -> None:
    print(
        f"{row['image']:>14}  {row['encoder']:<13} {row['setting']:<34} "
        f"{row['median_ms']:8.2f} ms (best {row['best_ms']:7.2f})  {row['bytes']:>9} bytes  "
        f"{row['bits_per_channel']:.2f} bits/channel",
        flush=True,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-encode", description=__doc__)
    p.add_argument("--sizes", type=lambda v: [int(s) for s in v.split(",")], default=[512, 1024])
    p.add_argument("--repeats", type=int, default=7, help="timed calls per setting")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    return p


if __name__ == "__main__":
    sys.exit(main())
