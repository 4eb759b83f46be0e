"""The worker's view of the lanes: topics by rank, and the window's reserve for the highest."""

from __future__ import annotations

import pytest

from streamgen.configuration import load_settings
from streamgen.worker.request_lanes import WorkerLanes

LANES = "interactive=0.1,default=0.3,bulk=0.1"


@pytest.mark.parametrize(("max_in_flight", "reserve"), [(64, 16), (8, 2), (4, 1), (3, 0), (1, 0)])
def test_the_reserve_is_a_quarter_of_the_window_and_never_all_of_it(
    max_in_flight: int, reserve: int
) -> None:
    settings = load_settings({"topics.lanes": LANES, "worker.max_in_flight": max_in_flight}, env={})
    lanes = WorkerLanes.from_settings(settings)
    assert lanes.reserve == reserve < max_in_flight
    assert lanes.topics == (
        "streamgen.requests.interactive",
        "streamgen.requests",
        "streamgen.requests.bulk",
    )
    assert lanes.of_partition(("streamgen.requests.bulk", 3)) == 2
    assert lanes.of_topic("streamgen.requests.interactive") == 0


def test_one_lane_reserves_nothing_and_every_topic_is_it() -> None:
    lanes = WorkerLanes.from_settings(load_settings({"worker.max_in_flight": 64}, env={}))
    assert lanes.reserve == 0
    assert lanes.topics == ("streamgen.requests",)
    assert lanes.of_topic("a.test.topic") == 0
