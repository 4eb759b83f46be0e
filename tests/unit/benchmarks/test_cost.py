"""Dollars per 1,000 images from throughput and a GPU-hour price (scripts/bench-engine)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.cost import usd_per_1000_images


def test_one_image_per_second_at_3_60_an_hour_costs_one_dollar_per_1000() -> None:
    assert usd_per_1000_images(1.0, 3.60) == pytest.approx(1.0)
    assert usd_per_1000_images(7.44, 4.54) == pytest.approx(0.1695, abs=1e-4)


@given(
    st.floats(min_value=0.01, max_value=1000),
    st.floats(min_value=0.01, max_value=100),
    st.floats(min_value=1.01, max_value=10),
)
def test_cost_is_linear_in_price_and_inverse_in_throughput(
    ips: float, price: float, factor: float
) -> None:
    cost = usd_per_1000_images(ips, price)
    assert usd_per_1000_images(ips, price * factor) == pytest.approx(cost * factor)
    assert usd_per_1000_images(ips * factor, price) == pytest.approx(cost / factor)


def test_no_throughput_costs_infinitely_much_and_a_negative_price_is_refused() -> None:
    assert usd_per_1000_images(0.0, 4.0) == math.inf
    assert usd_per_1000_images(float("nan"), 4.0) == math.inf
    with pytest.raises(ValueError):
        usd_per_1000_images(1.0, -1.0)
