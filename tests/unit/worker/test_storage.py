"""The image writer: each request's format names its keys, and a request's images, encoded
side by side, are stored under their own indexes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from streamgen.contracts.request import GenerationRequest
from streamgen.store.encode import encode_image
from streamgen.worker.backoff import Backoff
from streamgen.worker.offsets import Ticket
from streamgen.worker.storage import ImageWriter, StoreRetry
from streamgen.worker.work_item import SourceRecord, WorkItem
from tests.support.memory_store import MemoryStore

RECORD = SourceRecord("requests", 0, 7, b"r-1", b"value", (), 1)


def writer(store: MemoryStore, default: str = "png") -> ImageWriter:
    return ImageWriter(store, encode_image, default, StoreRetry(Backoff(0.01, 0.01)))


def item(**fields: Any) -> WorkItem:
    request = GenerationRequest(request_id="r-1", prompt="p", **fields)
    return WorkItem(Ticket("requests", 0, 7, 1), RECORD, request, received_at=0.0)


def solid(value: int) -> Image.Image:
    return Image.fromarray(np.full((16, 24, 3), value, dtype=np.uint8), "RGB")


def test_images_of_one_request_keep_their_order_whatever_finishes_first() -> None:
    store = MemoryStore({})
    images = tuple(solid(40 * i) for i in range(5))
    stored = writer(store).write(item(num_images=5), images, seed=100)
    assert [s.key for s in stored.images] == [f"r-1/{i}.png" for i in range(5)]
    for i, image in enumerate(stored.images):
        pixels = np.asarray(Image.open(io.BytesIO(store.get(image.uri))))
        assert (pixels == 40 * i).all(), f"image {i} stored under another index"
    assert stored.output.format.name == "png" and stored.output.quality is None


def test_the_request_format_wins_over_the_workers_default() -> None:
    store = MemoryStore({})
    stored = writer(store, default="webp").write(
        item(output_format="jpeg", output_quality=60), (solid(9),), seed=1
    )
    [image] = stored.images
    assert image.key == "r-1/0.jpg" and image.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(store.get(image.uri))).format == "JPEG"
    assert (stored.output.format.name, stored.output.quality) == ("jpeg", 60)
    default = writer(MemoryStore({}), default="webp").write(item(), (solid(9),), seed=1)
    assert default.images[0].key == "r-1/0.webp" and default.output.lossless
