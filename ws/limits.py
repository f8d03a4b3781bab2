"""Per-connection and per-address limits: a token bucket for messages, a registry for connection counts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

__all__ = ["ConnectionLimiter", "TokenBucket"]


class TokenBucket:
    """Allows `rate` events per second on average with bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        """Spend one token; return False (spending nothing) when none is left."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class ConnectionLimiter:
    """Counts open sockets in total and per client address, refusing those past the limits."""

    def __init__(self, max_total: int, max_per_ip: int) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self._per_ip: Counter[str] = Counter()
        self.total = 0

    def acquire(self, address: str) -> str | None:
        """Reserve a slot for `address`; return None, or the reason it was refused."""
        if self.total >= self.max_total:
            return f"server holds {self.total} connections (limit {self.max_total}); retry later"
        if self._per_ip[address] >= self.max_per_ip:
            return f"{self._per_ip[address]} connections from this address (limit {self.max_per_ip})"
        self._per_ip[address] += 1
        self.total += 1
        return None

    def release(self, address: str) -> None:
        """Free the slot reserved by `acquire`."""
        self.total -= 1
        self._per_ip[address] -= 1
        if self._per_ip[address] <= 0:
            del self._per_ip[address]
