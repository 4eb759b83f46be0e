"""An engine that does no diffusion: every request gets the same small image at once.

Selected by the pipeline benchmark to measure everything around the GPU (consume, decode,
batch, encode, store, publish, commit) with the GPU's cost taken out. It keeps the
:class:`~streamgen.engine.types.Engine` contract: one outcome per request, in order, the seed
actually used, cancellation honoured.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from PIL import Image as PILImage
from PIL.Image import Image

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import CancelCheck, GenerationOutcome, Shape, StepObserver, shape_of
from streamgen.errors import RequestCancelled

__all__ = ["NoopEngine"]


class NoopEngine:
    def __init__(
        self,
        *,
        max_batch_size: int = 16,
        default_scheduler: str = "dpmpp_2m",
        image_size: int = 8,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size}: need at least 1")
        if image_size < 1:
            raise ValueError(f"image_size={image_size}: need at least 1 pixel")
        self._max_batch_size = max_batch_size
        self._default_scheduler = default_scheduler
        self._image: Image = PILImage.new("RGB", (image_size, image_size), (96, 128, 160))

    def shape_of(self, request: GenerationRequest) -> Shape:
        return shape_of(request, self._default_scheduler)

    def max_batch_size(self, shape: Shape) -> int:
        return self._max_batch_size

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        outcomes = []
        for request in requests:
            # Same rule as a real engine: a request without a seed gets a reproducible one.
            seed = request.seed if request.seed is not None else _seed_for(request.request_id)
            if cancelled is not None and cancelled(request):
                error = RequestCancelled(f"request {request.request_id} cancelled")
                outcomes.append(GenerationOutcome(request, seed, error=error))
                continue
            images = (self._image,) * request.num_images
            outcomes.append(
                GenerationOutcome(request, seed, images=images, batch_size=len(requests))
            )
        return outcomes


def _seed_for(request_id: str) -> int:
    return zlib.crc32(request_id.encode())
