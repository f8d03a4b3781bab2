"""Fuse many providers' quotes into one quote per symbol.

Rules (pure; documented in docs/sources.md):
1. Candidates are the latest quote of each provider that is not `inactive` and at most
   `max_age_s` old (timestamps in the future count as now).
2. With three or more candidates, a price more than `outlier_ratio` away from their median is
   dropped: one venue's glitch must not become the published price.
3. The price is the freshest candidate's; quotes within `freshness_tolerance_s` of the freshest
   count as equally fresh and the better (lower) priority wins among them. `source`
   names that provider, `change_24h` and `volume_24h` come with it when it has them.
4. `market_cap` and `change_7d` (and a missing `change_24h`/`volume_24h`) come from the first
   aggregator in `AGGREGATORS` order that has them, within the longer `aggregate_max_age_s`
   (they move slowly, and exchanges do not publish them).
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from core.records import PriceQuote

from .market import AGGREGATORS

__all__ = ["QuoteBook", "fuse_quote"]


class QuoteBook:
    """The latest quote of every provider for every symbol."""

    def __init__(self) -> None:
        self._quotes: dict[str, dict[str, PriceQuote]] = {}

    def update(self, provider: str, quotes: Iterable[PriceQuote]) -> set[str]:
        """Store `provider`'s quotes; return the symbols they touched."""
        touched: set[str] = set()
        for quote in quotes:
            self._quotes.setdefault(quote.symbol, {})[provider] = quote
            touched.add(quote.symbol)
        return touched

    def candidates(self, symbol: str) -> dict[str, PriceQuote]:
        """Return provider -> latest quote for `symbol`."""
        return dict(self._quotes.get(symbol, {}))

    def symbols(self) -> set[str]:
        return set(self._quotes)


def fuse_quote(
    symbol: str,
    candidates: Mapping[str, PriceQuote],
    *,
    healthy: Collection[str],
    now: datetime,
    priorities: Mapping[str, int],
    max_age_s: float = 120.0,
    aggregate_max_age_s: float = 900.0,
    outlier_ratio: float = 0.2,
    freshness_tolerance_s: float = 2.0,
    aggregators: Iterable[str] = AGGREGATORS,
) -> PriceQuote | None:
    """Return the fused quote for `symbol`, or None when no healthy provider has a fresh price.

    Args:
        candidates: provider name -> that provider's latest quote for `symbol`.
        healthy: names of providers whose health is not `inactive`.
        priorities: provider name -> priority (1 is best); unknown names rank last.
    """

    def age_s(quote: PriceQuote) -> float:
        return max(0.0, (now - quote.timestamp).total_seconds())

    usable = {name: q for name, q in candidates.items() if name in healthy}
    fresh = {name: q for name, q in usable.items() if age_s(q) <= max_age_s}
    if len(fresh) >= 3:
        median = statistics.median(q.price for q in fresh.values())
        fresh = {name: q for name, q in fresh.items() if abs(q.price - median) <= outlier_ratio * median}
    if not fresh:
        return None
    # Quotes within `freshness_tolerance_s` of the freshest are equally fresh, so a REST poll
    # landing a moment after a stream tick does not make the published source flap.
    newest = min(age_s(q) for q in fresh.values())
    near = [(name, q) for name, q in fresh.items() if age_s(q) <= newest + freshness_tolerance_s]
    best_name, best = min(near, key=lambda item: (priorities.get(item[0], 1_000), age_s(item[1]), item[0]))
    slow = [
        usable[name] for name in aggregators if name in usable and age_s(usable[name]) <= aggregate_max_age_s
    ]
    if best_name in aggregators:
        slow.insert(0, best)

    def first(field: str) -> float | None:
        for quote in slow:
            value = getattr(quote, field)
            if value is not None:
                return float(value)
        return None

    return replace(
        best,
        symbol=symbol,
        timestamp=min(best.timestamp, now),
        change_24h=best.change_24h if best.change_24h is not None else first("change_24h"),
        volume_24h=best.volume_24h if best.volume_24h is not None else first("volume_24h"),
        change_7d=first("change_7d"),
        market_cap=first("market_cap"),
    )
