"""Engines for fault tests only: the real tiny engine, slowed down or held on purpose."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import CancelCheck, Engine, GenerationOutcome, Shape


class _Wrapped:
    """The real engine's shapes and limits; subclasses change only how ``generate`` runs."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    def shape_of(self, request: GenerationRequest) -> Shape:
        return self.inner.shape_of(request)

    def max_batch_size(self, shape: Shape) -> int:
        return self.inner.max_batch_size(shape)


class SlowEngine(_Wrapped):
    """Sleeps before every batch: longer than max.poll.interval.ms in the stall test."""

    def __init__(self, inner: Engine, sleep_s: float) -> None:
        super().__init__(inner)
        self.sleep_s = sleep_s
        self.batches: list[int] = []

    def generate(
        self, requests: Sequence[GenerationRequest], *, cancelled: CancelCheck | None = None
    ) -> list[GenerationOutcome]:
        self.batches.append(len(requests))
        time.sleep(self.sleep_s)
        return self.inner.generate(requests, cancelled=cancelled)


class GatedEngine(_Wrapped):
    """Holds every batch until the test opens the gate: the worker stays full meanwhile."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self.gate = threading.Event()

    def generate(
        self, requests: Sequence[GenerationRequest], *, cancelled: CancelCheck | None = None
    ) -> list[GenerationOutcome]:
        self.gate.wait()
        return self.inner.generate(requests, cancelled=cancelled)
