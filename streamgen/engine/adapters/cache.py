"""Loaded adapters, most recently used kept up to a byte budget; each loaded once at a time.

Pure bookkeeping over a ``load`` callable: no store, no torch. Two threads asking for an
adapter that is not loaded yet wait for one load (the second gets its result or its error);
an error is never cached, so a request naming a fixed object later loads it afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, Protocol, TypeVar

__all__ = ["AdapterCache", "Sized"]


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


V = TypeVar("V", bound=Sized)


class AdapterCache(Generic[V]):
    """LRU by bytes. An entry larger than the whole budget is returned but not kept.

    Entries dropped from the cache stay alive while a batch still holds them, so the memory in
    use can pass the budget by the adapters of the batches running.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._loading: dict[Hashable, Future[V]] = {}
        self._lock = threading.Lock()
        self.loads = 0  # calls of ``load`` (successful or not)
        self.hits = 0
        self.evictions = 0

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            pending = self._loading.get(key)
            if pending is None:
                pending = self._loading[key] = Future()
                self.loads += 1
                owner = True
            else:
                owner = False
        if not owner:
            return pending.result()
        try:
            value = load()
        except BaseException as exc:
            with self._lock:
                del self._loading[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._loading[key]
            self._keep(key, value)
        pending.set_result(value)
        return value

    def _keep(self, key: Hashable, value: V) -> None:
        if value.nbytes > self.budget_bytes:
            return
        self._entries[key] = value
        used = sum(entry.nbytes for entry in self._entries.values())
        while used > self.budget_bytes:
            _, dropped = self._entries.popitem(last=False)
            used -= dropped.nbytes
            self.evictions += 1
