"""The adapter cache: least recently used out past the byte budget, one load per adapter even
when threads ask for it at once, and no error kept."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.engine.adapters import AdapterCache


@dataclass(frozen=True)
class Blob:
    name: str
    nbytes: int


def test_least_recently_used_leaves_first_past_the_budget() -> None:
    cache: AdapterCache[Blob] = AdapterCache(budget_bytes=10)
    for name in "abc":
        cache.get(name, lambda name=name: Blob(name, 4))  # type: ignore[misc]
    assert cache.evictions == 1 and len(cache) == 2  # a left
    cache.get("b", lambda: Blob("b?", 4))  # b is now the most recent
    cache.get("d", lambda: Blob("d", 4))  # so c leaves
    assert cache.get("b", lambda: Blob("b?", 4)).name == "b"
    assert cache.get("c", lambda: Blob("c2", 4)).name == "c2"
    assert (cache.loads, cache.hits, cache.nbytes) == (5, 2, 8)


def test_an_adapter_larger_than_the_budget_is_used_but_not_kept() -> None:
    cache: AdapterCache[Blob] = AdapterCache(budget_bytes=10)
    cache.get("small", lambda: Blob("small", 4))
    assert cache.get("huge", lambda: Blob("huge", 11)).name == "huge"
    assert len(cache) == 1 and cache.evictions == 0


def test_threads_asking_at_once_share_one_load() -> None:
    cache: AdapterCache[Blob] = AdapterCache(budget_bytes=100)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_load() -> Blob:
        calls.append(1)
        started.set()
        release.wait()
        return Blob("a", 1)

    got: list[Blob] = []
    first = threading.Thread(target=lambda: got.append(cache.get("a", slow_load)))
    first.start()
    started.wait()
    others = [threading.Thread(target=lambda: got.append(cache.get("a", slow_load))) for _ in "xyz"]
    for thread in others:
        thread.start()
    release.set()
    for thread in (first, *others):
        thread.join()
    assert len(calls) == 1 and len(got) == 4 and len({id(blob) for blob in got}) == 1


def test_a_failed_load_is_not_kept() -> None:
    cache: AdapterCache[Blob] = AdapterCache(budget_bytes=100)

    def broken() -> Blob:
        raise FileNotFoundError("a")

    with pytest.raises(FileNotFoundError):
        cache.get("a", broken)
    assert cache.get("a", lambda: Blob("a", 1)).name == "a"
    assert cache.loads == 2


# Hypothesis: any sequence of asks against a plain list kept in recency order.
KEYS = st.sampled_from("abcdef")
SIZES = {"a": 1, "b": 3, "c": 5, "d": 8, "e": 13, "f": 21}  # f never fits a budget of 20


@settings(max_examples=200, deadline=None)
@given(st.lists(KEYS, max_size=40), st.integers(min_value=1, max_value=30))
def test_any_sequence_keeps_the_most_recent_that_fit_and_loads_only_misses(
    asks: list[str], budget: int
) -> None:
    cache: AdapterCache[Blob] = AdapterCache(budget_bytes=budget)
    recent: list[str] = []  # what the cache should hold, least recent first
    loaded: dict[str, Blob] = {}
    misses = 0
    for key in asks:
        hit = key in recent
        blob = cache.get(key, lambda key=key: Blob(key, SIZES[key]))  # type: ignore[misc]
        assert blob.name == key
        if hit:
            assert blob is loaded[key]  # the kept object, not a new load
            recent.remove(key)
        else:
            misses += 1
            loaded[key] = blob
        if SIZES[key] <= budget:
            recent.append(key)
        while sum(SIZES[k] for k in recent) > budget:
            recent.pop(0)
        assert cache.nbytes == sum(SIZES[k] for k in recent) <= budget
        assert len(cache) == len(recent)
    assert (cache.loads, cache.hits) == (misses, len(asks) - misses)
