"""Token buckets: the one rate budget shared by provider pools, socket sessions and REST clients."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ClientAccount", "ClientBudgets", "TokenBucket", "retry_after_s"]


class TokenBucket:
    """A token bucket: `capacity` calls at once, refilled at one call per `interval_s`.

    A call may cost more than one token (a request carrying many texts). One that costs more than
    the whole bucket is let through when the bucket is full and leaves it in debt: the client then
    waits until the debt is paid, so the rate over time holds whatever the size of each call. A
    call charged in two steps (the guard's token at the door, then its texts) says what it `paid`
    already, so that "full" means full before its first step.

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

    def try_acquire(self, now: float, cost: float = 1.0, *, paid: float = 0.0) -> bool:
        """Take `cost` tokens if the bucket holds them (or is full); return whether the call may go out."""
        if self.interval_s == 0:
            return True
        self._refill(now)
        if self._tokens >= self._needed(cost, paid):
            self._tokens -= cost
            return True
        return False

    def seconds_until_token(self, now: float, cost: float = 1.0, *, paid: float = 0.0) -> float:
        """Return how long until a call of `cost` may go out (0 when it may now)."""
        if self.interval_s == 0:
            return 0.0
        self._refill(now)
        return max(0.0, (self._needed(cost, paid) - self._tokens) * self.interval_s)

    def _needed(self, cost: float, paid: float) -> float:
        return min(float(cost), max(0.0, self.capacity - paid))

    def _refill(self, now: float) -> None:
        if self._updated is not None:
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.capacity), self._tokens + elapsed / self.interval_s)
        self._updated = now


class ClientBudgets:
    """One token bucket per client key (its IP), shared by every door that client comes through.

    Args:
        rate_per_s: tokens per second per client; 0 turns the budget off.
        burst: tokens a client may spend at once.
        max_clients: buckets kept; the least recently seen is forgotten beyond it (memory is bounded).
    """

    def __init__(
        self, rate_per_s: float, burst: int, *, max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.refused = 0  # calls refused, for tests and logs

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0

    @property
    def rate_per_s(self) -> float:
        return 1.0 / self.interval_s if self.interval_s else 0.0

    def charge(self, client: str, cost: float = 1.0, *, paid: float = 0.0) -> float | None:
        """Take `cost` tokens from the client's bucket; return the wait in seconds when it cannot pay, else None.

        `paid`: what the same call already took (see `TokenBucket`).
        """
        if self.interval_s == 0 or cost <= 0:
            return None
        bucket = self._buckets.pop(client, None) or TokenBucket(self.interval_s, self.burst)
        self._buckets[client] = bucket  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        now = self.clock()
        if bucket.try_acquire(now, cost, paid=paid):
            return None
        self.refused += 1
        return bucket.seconds_until_token(now, cost, paid=paid)

    def refusal(self, wait_s: float, unit: str = "requests") -> str:
        """Say why a call was refused and when to come back (the 429's message)."""
        return (f"Too many {unit}: at most {self.burst} at once and {self.rate_per_s:g} per second per client; "
                f"retry after {retry_after_s(wait_s)} s")


def retry_after_s(wait_s: float) -> int:
    """Return a `Retry-After` value: whole seconds, at least 1."""
    return max(1, int(-(-wait_s // 1)))


@dataclass(frozen=True)
class ClientAccount:
    """One client's budget, as a route sees it: what it charges beyond what the guard took (`paid`)."""

    budgets: ClientBudgets
    client: str
    paid: float = 0.0

    def charge(self, cost: float) -> float | None:
        """Take `cost` more tokens; return the wait in seconds when the client cannot pay, else None."""
        return self.budgets.charge(self.client, cost, paid=self.paid)
