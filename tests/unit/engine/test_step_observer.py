"""The engine's ``on_step``: every denoising step of a batch, in order, naming the requests
still in it (what the worker's progress events are made of); it changes no image."""

from __future__ import annotations

from collections.abc import Sequence

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from tests.unit.engine.conftest import assert_same_images, request


def test_every_step_in_order_each_request_once(engine: DiffusionEngine) -> None:
    seen: list[tuple[list[str], int, int]] = []
    batch = [request("a", steps=3, num_images=2), request("b", steps=3, seed=5)]

    def observe(ids: Sequence[str], step: int, steps: int) -> None:
        seen.append((list(ids), step, steps))

    observed = engine.generate(batch, on_step=observe)
    assert seen == [(["a", "b"], 1, 3), (["a", "b"], 2, 3), (["a", "b"], 3, 3)]
    for with_observer, without in zip(observed, engine.generate(batch), strict=True):
        assert_same_images(with_observer, without)


def test_a_request_that_leaves_is_no_longer_named(engine: DiffusionEngine) -> None:
    seen: list[list[str]] = []
    asked: dict[str, int] = {}

    def cancelled(r: GenerationRequest) -> bool:
        asked[r.request_id] = asked.get(r.request_id, 0) + 1
        return r.request_id == "b" and asked["b"] > 2  # before the batch, step 1: then gone

    engine.generate(
        [request("a", steps=3), request("b", steps=3)],
        cancelled=cancelled,
        on_step=lambda ids, step, steps: seen.append(list(ids)),
    )
    assert seen == [["a", "b"], ["a"], ["a"]]
