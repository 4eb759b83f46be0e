"""Encoding images and writing them to the object store, retried until durable.

Runs on the output thread pool, off the GPU thread, so the next batch starts while this one is
encoded and uploaded. Keys are deterministic (``{request_id}/{index}.{ext}``): re-processing a
request finds the same objects instead of leaving orphans, and keeps them as first written
(DESIGN invariant 3).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from PIL.Image import Image

from streamgen.contracts.formats import OutputFormat, output_format
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import StoredImage
from streamgen.errors import StoreUnavailable
from streamgen.settings import ImageFormatName
from streamgen.store.base import ObjectStore
from streamgen.store.encode import EncodedImage
from streamgen.worker.backoff import Backoff, TransientRetries
from streamgen.worker.work_item import WorkItem

__all__ = ["ImageWriter", "StoreRetry", "StoredOutputs", "object_key"]

log = logging.getLogger(__name__)

T = TypeVar("T")

EncodeImage = Callable[[Image, OutputFormat], EncodedImage]


def object_key(request_id: str, index: int, extension: str) -> str:
    return f"{request_id}/{index}.{extension}"


@functools.cache
def _image_pool() -> ThreadPoolExecutor:
    # As many images as a request may ask for (validation.max_num_images, 8 by default); more
    # wait their turn. Shared by every request: its tasks never wait on one another.
    return ThreadPoolExecutor(8, "streamgen-encode")


@dataclass(frozen=True, slots=True)
class StoredOutputs:
    """A request's images, durable, and the format they were stored in (for its result)."""

    images: list[StoredImage]
    output: OutputFormat


@dataclass
class StoreRetry:
    """Runs an object-store operation until it succeeds, retrying ``StoreUnavailable`` with
    backoff while partitions stay paused; a run past ``budget_s`` is fatal, and once the
    worker is stopping the ``StoreUnavailable`` is raised (the work is redone after restart).
    """

    backoff: Backoff
    budget_s: float = 0.0  # 0: retry for ever (partitions stay paused meanwhile)
    on_retry: Callable[[], None] | None = None
    stopping: Callable[[], bool] = lambda: False

    def call(self, what: str, operation: Callable[[], T]) -> T:
        retries: TransientRetries | None = None  # made at the first failure: most calls have none
        while True:
            try:
                return operation()
            except StoreUnavailable as exc:
                retries = retries or TransientRetries(self.backoff, self.budget_s)
                delay = retries.next_delay("object store", exc)  # FatalError past the budget
                if self.stopping():
                    raise
                log.warning("store of %s failed (%s); retry in %.2fs", what, exc, delay)
                if self.on_retry:
                    self.on_retry()
                time.sleep(delay)


@dataclass
class ImageWriter:
    store: ObjectStore
    encode: EncodeImage
    image_format: ImageFormatName  # store.image_format: for requests that name no output_format
    retry: StoreRetry

    def output_for(self, request: GenerationRequest) -> OutputFormat:
        """The request's own format (validated on intake), else the worker's default."""
        return output_format(request.output_format or self.image_format, request.output_quality)

    def write(self, item: WorkItem, images: tuple[Image, ...], seed: int) -> StoredOutputs:
        request = item.request
        output = self.output_for(request)
        stored = []
        for index, (data, content_type) in enumerate(self._encode_all(images, output)):
            metadata = {
                "request-id": request.request_id,
                "seed": str(seed + index),
                "model": request.model,
            }
            key = object_key(request.request_id, index, output.format.extension)
            put = functools.partial(self._put, key, data, index, content_type, metadata)
            stored.append(self.retry.call(key, put))
        return StoredOutputs(stored, output)

    def _encode_all(self, images: tuple[Image, ...], output: OutputFormat) -> list[EncodedImage]:
        # The user waits for the last image of a request: encode them side by side (Pillow and
        # zlib release the GIL), not one after the other. The pool is not the output pool, whose
        # threads wait here, nor the PNG strip pool, which these encodes wait on.
        if len(images) == 1:
            return [self.encode(images[0], output)]
        return list(_image_pool().map(self.encode, images, [output] * len(images)))

    def _put(
        self, key: str, data: bytes, index: int, content_type: str, metadata: dict[str, str]
    ) -> StoredImage:
        # Re-processing (after a crash or a rebalance) gets the first object back: a batch of
        # another composition gives bytes that differ within fp tolerance, and the store never
        # replaces an object, so the sha256 of a result already published stays true.
        return self.store.put(key, data, index=index, content_type=content_type, metadata=metadata)
