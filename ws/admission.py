"""Per-address limits: a registry of connection counts (the message budget is core.token_bucket)."""

from __future__ import annotations

from collections import Counter

__all__ = ["ConnectionLimiter"]


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
