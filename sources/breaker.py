"""Per-provider rate budget (token bucket) and circuit breaker. Pure: the caller passes the time.

Both take `now` as monotonic seconds so tests drive them with a fake clock instead of sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.token_bucket import TokenBucket

__all__ = ["BreakerState", "CircuitBreaker", "TokenBucket"]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class _Trip:
    until: float
    backoff_s: float


class CircuitBreaker:
    """Open after `failure_threshold` consecutive failures; probe again with exponential backoff.

    closed --N failures--> open --backoff elapsed--> half_open (one probe allowed)
    half_open --success--> closed (backoff reset); half_open --failure--> open (backoff doubled).
    any state --trip(hold)--> open for `hold` at once (a geo-block: no streak, no ladder); a probe
    that then fails for another reason re-opens on the ladder from `base_backoff_s`.

    Args:
        failure_threshold: consecutive failures that open the breaker.
        base_backoff_s: how long the first trip keeps the breaker open.
        max_backoff_s: cap for the doubled backoff.
    """

    def __init__(
        self, *, failure_threshold: int = 3, base_backoff_s: float = 15.0, max_backoff_s: float = 600.0
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold!r}")
        if base_backoff_s <= 0 or max_backoff_s < base_backoff_s:
            raise ValueError(
                f"need 0 < base_backoff_s <= max_backoff_s, got {base_backoff_s!r} and {max_backoff_s!r}"
            )
        self.failure_threshold = failure_threshold
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.consecutive_failures = 0
        self._state: BreakerState = "closed"
        self._trip: _Trip | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def reopens_at(self) -> float | None:
        """Monotonic time at which an open breaker lets a probe through (None unless open)."""
        return self._trip.until if self._trip is not None and self._state == "open" else None

    def allow(self, now: float) -> bool:
        """Return whether a call may go out now; in half-open, only one probe at a time."""
        if self._state == "closed":
            return True
        if self._state == "open":
            assert self._trip is not None
            if now < self._trip.until:
                return False
            self._state = "half_open"
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        """Close the breaker and forget the failure streak."""
        self._state = "closed"
        self._trip = None
        self._probe_in_flight = False
        self.consecutive_failures = 0

    def record_failure(self, now: float) -> None:
        """Count a failure; open (or re-open with doubled backoff) when the rule says so."""
        self.consecutive_failures += 1
        self._probe_in_flight = False
        if self._state == "half_open":
            assert self._trip is not None
            backoff = min(self._trip.backoff_s * 2.0, self.max_backoff_s)
            self._open(now, backoff)
        elif self._state == "closed" and self.consecutive_failures >= self.failure_threshold:
            self._open(now, self.base_backoff_s)

    def trip(self, now: float, hold_s: float) -> None:
        """Open at once for `hold_s`, whatever the streak: the upstream refused us for good."""
        if hold_s <= 0:
            raise ValueError(f"hold_s must be > 0, got {hold_s!r}")
        self._probe_in_flight = False
        self._state = "open"
        # The doubling after a failed probe starts over from the base: a later timeout or 5xx is
        # an ordinary fault again, not a reason to wait hours times two.
        self._trip = _Trip(until=now + hold_s, backoff_s=self.base_backoff_s / 2.0)

    def release_probe(self) -> None:
        """Give back a half-open probe slot that was granted but not used (e.g. no rate budget)."""
        self._probe_in_flight = False

    def _open(self, now: float, backoff_s: float) -> None:
        self._state = "open"
        self._trip = _Trip(until=now + backoff_s, backoff_s=backoff_s)
