from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.worker.batcher import MicroBatcher

SIZES = {"a": 2, "b": 3, "c": 1}


def make(max_wait_s: float = 1.0, fairness: int = 2) -> MicroBatcher[str, int]:
    return MicroBatcher(max_wait_s=max_wait_s, max_batch_size=SIZES.__getitem__, fairness=fairness)


def test_batch_closes_at_max_size_before_max_wait() -> None:
    b = make()
    b.add("b", 1, now=0.0)
    b.add("b", 2, now=0.0)
    assert b.next_batch(now=0.1) is None
    b.add("b", 3, now=0.1)
    batch = b.next_batch(now=0.1)
    assert batch is not None and batch.items == (1, 2, 3)


def test_batch_closes_at_max_wait_after_first_item() -> None:
    b = make(max_wait_s=0.5)
    b.add("b", 1, now=10.0)
    wait = b.seconds_until_ready(now=10.2)
    assert wait is not None and abs(wait - 0.3) < 1e-9
    assert b.next_batch(now=10.4) is None
    batch = b.next_batch(now=10.5)
    assert batch is not None and batch.items == (1,)


def test_oldest_shape_first_when_priorities_equal() -> None:
    b = make(max_wait_s=0.0)
    b.add("b", 1, now=2.0)
    b.add("a", 2, now=1.0)
    first = b.next_batch(now=3.0)
    assert first is not None and first.shape == "a"


def test_priority_first_within_a_shape_then_arrival() -> None:
    b = make(max_wait_s=0.0)
    b.add("b", 1, now=0.0, priority=0)
    b.add("b", 2, now=0.1, priority=5)
    b.add("b", 3, now=0.2, priority=0)
    b.add("b", 4, now=0.3, priority=5)
    batch = b.next_batch(now=1.0)
    assert batch is not None and batch.items == (2, 4, 1)


def test_priority_cannot_starve_a_shape() -> None:
    b = make(max_wait_s=0.0, fairness=2)
    b.add("b", 0, now=0.0)  # low priority, oldest
    served = []
    for i in range(1, 10):
        b.add("c", i, now=float(i), priority=9)  # a high-priority shape keeps arriving
        batch = b.next_batch(now=float(i))
        assert batch is not None
        served.append(batch.shape)
        if batch.shape == "b":
            break
    assert "b" in served and len(served) <= 3


def test_flush_makes_everything_ready() -> None:
    b = make(max_wait_s=100.0)
    b.add("a", 1, now=0.0)
    assert b.next_batch(now=0.0) is None
    b.flush()
    batch = b.next_batch(now=0.0)
    assert batch is not None and batch.items == (1,)


def test_remove_takes_out_matching_items() -> None:
    b = make()
    for i in range(6):
        b.add("ab"[i % 2], i, now=0.0)
    assert sorted(b.remove(lambda item: item % 3 == 0)) == [0, 3]
    assert sorted(b) == [1, 2, 4, 5]
    assert len(b) == 4


events = st.lists(
    st.tuples(
        st.sampled_from(sorted(SIZES)),
        st.integers(0, 3),  # priority
        st.floats(0, 0.7),  # time advance before the event
        st.booleans(),  # ask for a batch after adding
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(events=events, max_wait=st.floats(0, 1.0), fairness=st.integers(0, 3))
def test_every_item_comes_out_once_in_a_batch_of_its_shape(
    events: list[tuple[str, int, float, bool]], max_wait: float, fairness: int
) -> None:
    b: MicroBatcher[str, tuple[str, int]] = MicroBatcher(
        max_wait_s=max_wait, max_batch_size=SIZES.__getitem__, fairness=fairness
    )
    now = 0.0
    out: list[tuple[str, int]] = []
    for i, (shape, priority, advance, ask) in enumerate(events):
        now += advance
        b.add(shape, (shape, i), now=now, priority=priority)
        if ask:
            batch = b.next_batch(now)
            if batch is not None:
                assert len(batch.items) <= SIZES[batch.shape]
                assert all(item[0] == batch.shape for item in batch.items)
                out.extend(batch.items)
    now += max_wait + 1
    while (batch := b.next_batch(now)) is not None:
        out.extend(batch.items)
    assert sorted(out) == sorted((shape, i) for i, (shape, *_rest) in enumerate(events))
    assert len(b) == 0
    assert b.seconds_until_ready(now) is None
