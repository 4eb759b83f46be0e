"""The no-op engine keeps the Engine contract: one outcome per request, in order, seeds, cancel."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.latency import percentile
from benchmarks.noop_engine import NoopEngine
from streamgen.contracts.request import GenerationRequest


def _request(i: int, **fields: object) -> GenerationRequest:
    return GenerationRequest(request_id=f"r{i}", prompt="p", model="noop", **fields)  # type: ignore[arg-type]


def test_one_outcome_per_request_in_order_with_images_and_seeds() -> None:
    engine = NoopEngine(max_batch_size=4, image_size=8)
    requests = [_request(0, seed=7, num_images=2), _request(1)]
    outcomes = engine.generate(requests)
    assert [o.request.request_id for o in outcomes] == ["r0", "r1"]
    assert outcomes[0].seed == 7 and len(outcomes[0].images) == 2
    assert outcomes[0].images[0].size == (8, 8)
    # No seed given: one derived from the id, the same every time.
    assert outcomes[1].seed == engine.generate([_request(1)])[0].seed
    assert all(o.ok for o in outcomes)


def test_cancelled_requests_are_per_request_errors() -> None:
    outcomes = NoopEngine().generate(
        [_request(0), _request(1)], cancelled=lambda r: r.request_id == "r1"
    )
    assert outcomes[0].ok
    assert outcomes[1].error is not None and outcomes[1].error.code == "CANCELLED"


def test_shape_and_limits() -> None:
    engine = NoopEngine(max_batch_size=3, default_scheduler="ddim")
    shape = engine.shape_of(_request(0, width=64, height=64, steps=2))
    assert shape.scheduler == "ddim" and engine.max_batch_size(shape) == 3
    with pytest.raises(ValueError, match="max_batch_size=0"):
        NoopEngine(max_batch_size=0)


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1), st.floats(0.01, 100))
def test_percentile_is_one_of_the_values_and_monotone(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert percentile(values, 100) == max(values)
    assert p <= percentile(values, min(100.0, q + 10))
