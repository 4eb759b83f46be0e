"""Engines for fault tests only: the real tiny engine, slowed down or held on purpose."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import CancelCheck, Engine, GenerationOutcome, Shape, StepObserver


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
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        self.batches.append(len(requests))
        time.sleep(self.sleep_s)
        return self.inner.generate(requests, cancelled=cancelled, on_step=on_step)


class GatedEngine(_Wrapped):
    """Holds every batch until the test opens the gate: the worker stays full meanwhile."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self.gate = threading.Event()

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        self.gate.wait()
        return self.inner.generate(requests, cancelled=cancelled, on_step=on_step)


class CancelAtStep(_Wrapped):
    """The real engine; once a batch holding ``target`` has run ``steps_done`` denoising steps,
    calls ``cancel`` (which publishes a cancel to the broker) and holds that step boundary until
    the worker's own check has learnt it, so the cancel lands mid-batch at a known step."""

    def __init__(
        self, inner: Engine, target: str, steps_done: int, cancel: Callable[[], object]
    ) -> None:
        super().__init__(inner)
        self.target, self.steps_done, self._cancel = target, steps_done, cancel
        self.asked = 0  # how often the worker's check was asked about ``target``
        self.batches: list[list[str]] = []

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        assert cancelled is not None
        self.batches.append([r.request_id for r in requests])

        def check(request: GenerationRequest) -> bool:
            if request.request_id != self.target:
                return cancelled(request)
            self.asked += 1  # once before the batch, then once before each step
            if self.asked == self.steps_done + 2:
                self._cancel()
                deadline = time.monotonic() + 30
                while not cancelled(request) and time.monotonic() < deadline:
                    time.sleep(0.05)
            return cancelled(request)

        return self.inner.generate(requests, cancelled=check, on_step=on_step)


class HoldFirstBatch(_Wrapped):
    """The real engine; holds the first batch until ``release`` is set (the worker keeps
    polling and admitting meanwhile) and records every batch's request ids in order."""

    def __init__(self, inner: Engine, release: threading.Event) -> None:
        super().__init__(inner)
        self.release = release
        self.started = threading.Event()
        self.batches: list[list[str]] = []

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        self.batches.append([r.request_id for r in requests])
        if len(self.batches) == 1:
            self.started.set()
            assert self.release.wait(120), "the first batch was never released"
        return self.inner.generate(requests, cancelled=cancelled, on_step=on_step)
