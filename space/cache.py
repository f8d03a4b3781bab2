"""A small shared memo so that many visitors polling the same view cost one render per change.

Every visitor's timer asks for the same HTML; the view names what its output depends on (usually the
topic's `seq`, plus filters) and the first visitor after a change pays for the render.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Memo"]

T = TypeVar("T")


class Memo(Generic[T]):
    """Keep the last `size` results by key; an entry older than `ttl_s` is recomputed.

    Trade-off: two visitors arriving together may both compute the same entry; that is cheaper than
    making one wait on a lock held during a render.
    """

    def __init__(
        self, size: int = 64, ttl_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self.size = size
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _fresh(self, key: Hashable) -> tuple[bool, T | None]:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (self.ttl_s is None or now - entry[0] < self.ttl_s):
                self._entries.move_to_end(key)
                self.hits += 1
                return True, entry[1]
            self.misses += 1
        return False, None

    def _store(self, key: Hashable, value: T) -> T:
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """Return the cached value of `key`, computing and storing it when missing or stale."""
        found, value = self._fresh(key)
        return value if found else self._store(key, compute())  # type: ignore[return-value]

    async def aget(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """Like `get`, for a coroutine function (views that query the database off the event loop)."""
        found, value = self._fresh(key)
        return value if found else self._store(key, await compute())  # type: ignore[return-value]
