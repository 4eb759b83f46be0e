"""An engine the worker can be assembled with when no batch is meant to reach it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import GenerationOutcome, Shape, shape_of

__all__ = ["IdleEngine"]


class IdleEngine:
    """Shapes requests and bounds batches like an engine, but is never asked to generate: the
    GPU thread is not started, or the test plays the GPU by taking batches off the queue."""

    def shape_of(self, request: GenerationRequest) -> Shape:
        return shape_of(request, "dpmpp_2m")

    def max_batch_size(self, shape: Shape) -> int:
        return 64

    def generate(
        self, requests: Sequence[GenerationRequest], *, cancelled: Any = None, on_step: Any = None
    ) -> list[GenerationOutcome]:
        raise AssertionError("an IdleEngine is never asked to generate")
