"""A sliding-window counter of requests (HTTP requests, WebSocket connects and client messages)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RequestCounter"]


class RequestCounter:
    """Counts events in one-second buckets over the last hour; `last_minute()` and `last_hour()` read it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window_s: int = 3600) -> None:
        self._clock = clock
        self._window = window_s
        self._buckets = [0] * window_s
        self._stamps = [-1] * window_s
        self.total = 0

    def add(self, count: int = 1) -> None:
        """Record `count` events now."""
        second = int(self._clock())
        slot = second % self._window
        if self._stamps[slot] != second:
            self._stamps[slot] = second
            self._buckets[slot] = 0
        self._buckets[slot] += count
        self.total += count

    def _sum(self, seconds: int) -> int:
        now = int(self._clock())
        oldest = now - seconds + 1
        return sum(b for b, s in zip(self._buckets, self._stamps, strict=True) if oldest <= s <= now)

    def last_minute(self) -> int:
        """Return how many events happened in the last 60 seconds."""
        return self._sum(60)

    def last_hour(self) -> int:
        """Return how many events happened in the last 3600 seconds."""
        return self._sum(min(3600, self._window))
