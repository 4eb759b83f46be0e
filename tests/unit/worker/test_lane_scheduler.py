"""The lane scheduler: higher lanes first, and every waiting lane its minimum share."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.worker.lane_scheduler import LaneScheduler

MAX_COST = 10


@dataclass(frozen=True)
class Turn:
    candidates: dict[int, float]  # lane -> cost of its next work
    chosen: int
    owed: bool  # the chosen lane's credit covered its cost


def play(shares: list[float], steps: list[dict[int, float]]) -> list[Turn]:
    """Serve each step's chosen lane its whole cost, as the batcher does."""
    scheduler = LaneScheduler(shares)
    turns = []
    for candidates in steps:
        lane = scheduler.choose(candidates)
        owed = scheduler.credit(lane) >= candidates[lane]
        scheduler.charge({lane: candidates[lane]}, candidates)
        turns.append(Turn(candidates, lane, owed))
    return turns


@st.composite
def lanes_and_steps(draw: st.DrawFn) -> tuple[list[float], list[dict[int, float]]]:
    lanes = draw(st.integers(1, 4))
    weights = draw(st.lists(st.integers(1, 10), min_size=lanes, max_size=lanes))
    # Shares adding up to at most 1, as the settings insist.
    scale = draw(st.sampled_from([1.0, 0.9, 0.5]))
    shares = [scale * w / sum(weights) for w in weights]
    costs = st.integers(1, MAX_COST).map(float)
    step = st.dictionaries(st.integers(0, lanes - 1), costs, min_size=1)
    # Long runs of one candidate set: a backlog, as in a worker, not noise.
    runs = draw(st.lists(st.tuples(step, st.integers(1, 30)), min_size=1, max_size=12))
    return shares, [candidates for candidates, repeat in runs for _ in range(repeat)]


@settings(max_examples=300, deadline=None)
@given(lanes_and_steps())
def test_no_waiting_lane_gets_less_than_its_min_share_over_a_window(
    drawn: tuple[list[float], list[dict[int, float]]],
) -> None:
    """Over every stretch of turns in which a lane was a candidate at each turn, it got at least
    its share of what was served, less one piece of work per lane (the credit it must earn
    before it is owed, and what the lanes owed ahead of it take meanwhile)."""
    shares, steps = drawn
    turns = play(shares, steps)
    slack = len(shares) * MAX_COST
    for lane, share in enumerate(shares):
        for start in range(len(turns)):
            got = total = 0.0
            for turn in turns[start:]:
                if lane not in turn.candidates:
                    break
                total += turn.candidates[turn.chosen]
                got += turn.candidates[lane] if turn.chosen == lane else 0.0
                assert got >= share * total - slack, (lane, start, got, total)


@settings(max_examples=300, deadline=None)
@given(lanes_and_steps())
def test_higher_lanes_first_unless_a_lower_lane_is_owed(
    drawn: tuple[list[float], list[dict[int, float]]],
) -> None:
    shares, steps = drawn
    for turn in play(shares, steps):
        if turn.chosen != min(turn.candidates):
            assert turn.owed, turn


def test_a_bulk_backlog_waits_while_an_interactive_lane_has_work() -> None:
    """Interactive (share 0.5) against bulk (share 0.1), both always waiting, equal costs:
    bulk gets one turn in about ten, no more and no fewer."""
    turns = play([0.5, 0.1], [{0: 1.0, 1: 1.0}] * 100)
    bulk = sum(1 for turn in turns if turn.chosen == 1)
    assert 9 <= bulk <= 10
    assert turns[0].chosen == 0


def test_one_lane_is_always_chosen() -> None:
    turns = play([1.0], [{0: float(cost)} for cost in range(1, 20)])
    assert {turn.chosen for turn in turns} == {0}


def test_a_lane_that_stops_waiting_banks_no_credit() -> None:
    scheduler = LaneScheduler([0.5, 0.5])
    for _ in range(10):
        scheduler.charge({0: 1.0}, {0, 1})  # bulk waits, interactive is served: bulk earns
    assert scheduler.credit(1) == pytest.approx(5.0)
    scheduler.charge({0: 1.0}, {0})  # bulk had nothing to run
    assert scheduler.credit(1) == 0.0
    assert scheduler.choose({0: 1.0, 1: 1.0}) == 0


@pytest.mark.parametrize("shares", [[], [0.0], [0.6, 0.6], [1.5], [-0.1]])
def test_shares_outside_the_rules_are_refused(shares: list[float]) -> None:
    with pytest.raises(ValueError):
        LaneScheduler(shares)
