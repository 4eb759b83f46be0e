"""The fixed-cost engine's timing rule: a batch costs its fixed time, a slow request's batch
that many times more, whatever the batch's size; the time is slept, not computed."""

from __future__ import annotations

import pytest

from benchmarks.fixed_cost import SLOW_SUFFIX, FixedCostEngine, batch_seconds
from streamgen.contracts.request import GenerationRequest


def _request(request_id: str) -> GenerationRequest:
    return GenerationRequest(request_id=request_id, prompt="p", model="noop")


def test_a_batch_costs_its_fixed_time_whatever_its_size() -> None:
    assert batch_seconds(["a"], 0.5, 10.0) == 0.5
    assert batch_seconds(["a", "b", "c", "d"], 0.5, 10.0) == 0.5


def test_a_batch_holding_the_slow_request_costs_the_factor_times_more() -> None:
    assert batch_seconds(["a", f"b{SLOW_SUFFIX}", "c"], 0.5, 10.0) == 5.0
    assert batch_seconds([f"x{SLOW_SUFFIX}"], 0.25, 4.0) == 1.0
    # Only the suffix marks a slow request: the word elsewhere in an id does not.
    assert batch_seconds([f"{SLOW_SUFFIX}-a"], 0.5, 10.0) == 0.5


def test_an_empty_batch_costs_nothing() -> None:
    assert batch_seconds([], 0.5, 10.0) == 0.0


def test_the_engine_sleeps_the_rule_and_keeps_the_noop_contract() -> None:
    slept: list[float] = []
    engine = FixedCostEngine(batch_s=0.5, max_batch_size=4, slow_factor=10.0, sleep=slept.append)
    outcomes = engine.generate([_request("a"), _request("b")])
    engine.generate([_request("c"), _request(f"d{SLOW_SUFFIX}")])
    assert slept == [0.5, 5.0]
    assert [o.request.request_id for o in outcomes] == ["a", "b"]
    assert all(o.ok for o in outcomes)
    assert engine.max_batch_size(engine.shape_of(_request("a"))) == 4


@pytest.mark.parametrize(("batch_s", "factor"), [(-0.1, 10.0), (0.5, 0.5)])
def test_impossible_costs_are_refused(batch_s: float, factor: float) -> None:
    with pytest.raises(ValueError, match="batch_s="):
        FixedCostEngine(batch_s=batch_s, max_batch_size=4, slow_factor=factor)
