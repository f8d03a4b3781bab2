"""A token bucket: the one rate budget shared by provider pools and socket sessions."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """A token bucket: `capacity` calls at once, refilled at one call per `interval_s`.

    Args:
        interval_s: seconds per token; 0 disables the budget (every call allowed).
        capacity: burst size; the bucket starts full so the first poll goes out at once.
    """

    def __init__(self, interval_s: float, capacity: int = 1) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must be >= 0, got {interval_s!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.interval_s = interval_s
        self.capacity = capacity
        self._tokens = float(capacity)
        self._updated: float | None = None

    def try_acquire(self, now: float) -> bool:
        """Take one token if there is one; return whether the call may go out."""
        if self.interval_s == 0:
            return True
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def seconds_until_token(self, now: float) -> float:
        """Return how long until the next token (0 when one is available)."""
        if self.interval_s == 0:
            return 0.0
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) * self.interval_s)

    def _refill(self, now: float) -> None:
        if self._updated is not None:
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.capacity), self._tokens + elapsed / self.interval_s)
        self._updated = now
