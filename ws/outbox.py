"""A bounded per-socket outbox: keyed frames coalesce (latest wins), unkeyed frames are never dropped.

The session writes straight to the socket while it takes frames, so the outbox is empty in the common
case; frames wait here only while a write is pending (the socket's buffer is full).

Price updates are keyed by symbol, so a slow reader always gets the newest price of each symbol and
never a backlog of stale ones. News and errors are unkeyed: when they would overflow the bound the
outbox raises `OutboxFull`, and the session tells the client `SLOW_CONSUMER` and closes it, so the
client resumes from its last `seq` instead of silently missing items.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Outbox", "OutboxFull"]


class OutboxFull(Exception):
    """An unkeyed frame did not fit: the reader is too slow to keep a lossless stream."""


class _KeySlot:
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


class Outbox:
    """Frames waiting for one socket.

    Args:
        maxsize: frames that may wait at once; keyed frames count once per key.

    Trade-off: coalescing loses intermediate prices for a slow reader by design; news never is.
    """

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._order: deque[str | _KeySlot] = deque()
        self._latest: dict[str, str] = {}
        self._ready: asyncio.Event | None = None  # made by the first `get()`: the session reads with `pop()`
        self.coalesced = 0  # keyed frames replaced by a newer one before being sent
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._order)

    def put(self, text: str, key: str | None = None, *, bounded: bool = True) -> None:
        """Queue a frame without blocking.

        `bounded=False` is for resume replay: it is capped by the bus history already, and bounding
        it would close a client that is far behind before it could ever catch up.

        Raises:
            OutboxFull: an unkeyed, bounded frame found the outbox full.
        """
        if key is not None:
            if key in self._latest:
                self._latest[key] = text
                self.coalesced += 1
                return
            self._latest[key] = text
            self._order.append(_KeySlot(key))
        else:
            if bounded and len(self._order) >= self.maxsize:
                raise OutboxFull(f"outbox holds {len(self._order)} frames (limit {self.maxsize})")
            self._order.append(text)
        self.high_water = max(self.high_water, len(self._order))
        if self._ready is not None:
            self._ready.set()

    def put_urgent(self, text: str) -> None:
        """Drop everything queued and queue only this frame (the last word before a close)."""
        self._order.clear()
        self._latest.clear()
        self._order.append(text)
        if self._ready is not None:
            self._ready.set()

    def pop(self) -> str | None:
        """Return the next frame in arrival order, or None when none is waiting."""
        if not self._order:
            return None
        item = self._order.popleft()
        if isinstance(item, _KeySlot):
            return self._latest.pop(item.key)
        return item

    async def get(self) -> str:
        """Wait for and return the next frame, in arrival order."""
        while not self._order:
            if self._ready is None:
                self._ready = asyncio.Event()
            self._ready.clear()
            await self._ready.wait()
        frame = self.pop()
        assert frame is not None
        return frame
