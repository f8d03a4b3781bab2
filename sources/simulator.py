"""The labelled offline market: a seeded random walk from configurable start prices.

Every quote it makes says `source="simulator"`, and the UI and `system_status` say when it runs.
It exists so the app does its main job offline (a Space without internet, a laptop on a train);
it is never presented as market data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from core.clock import utc_now
from core.records import SIMULATOR_SOURCE, PriceQuote

__all__ = ["SIMULATOR_SOURCE", "START_PRICES", "MarketSimulator"]


# Start points of the walk (USD price, circulating supply, 24h volume). Round figures of the order of
# late 2025; override with SIMULATOR_PRICES=BTC:90000,ETH:3000 to start elsewhere (parsed by the settings).
START_PRICES: dict[str, tuple[float, float, float]] = {
    "BTC": (90_000.0, 19_950_000, 40e9),
    "ETH": (3_000.0, 120_700_000, 20e9),
    "USDT": (1.0, 185e9, 90e9),
    "XRP": (2.0, 60e9, 3e9),
    "BNB": (900.0, 138e6, 2e9),
    "SOL": (140.0, 560e6, 4e9),
    "USDC": (1.0, 76e9, 10e9),
    "DOGE": (0.15, 151e9, 1.5e9),
    "TRX": (0.28, 94.7e9, 0.7e9),
    "ADA": (0.45, 36e9, 0.8e9),
    "LINK": (13.0, 680e6, 0.6e9),
    "AVAX": (14.0, 430e6, 0.5e9),
    "XLM": (0.25, 32e9, 0.3e9),
    "SUI": (1.6, 3.7e9, 0.9e9),
    "BCH": (520.0, 19.9e6, 0.5e9),
    "HBAR": (0.14, 42e9, 0.2e9),
    "LTC": (85.0, 76e6, 0.5e9),
    "DOT": (2.5, 1.6e9, 0.2e9),
    "TON": (1.6, 2.5e9, 0.2e9),
    "SHIB": (0.0000085, 589e12, 0.2e9),
}
STABLECOINS = frozenset({"USDT", "USDC"})
DEFAULT_START = (1.0, 1e9, 1e7)


@dataclass
class _Walk:
    start: float
    price: float
    supply: float
    volume: float
    week_open: float


class MarketSimulator:
    """Seeded geometric random walk per symbol; `step()` advances every symbol one tick."""

    def __init__(
        self,
        symbols: tuple[str, ...],
        *,
        seed: int = 7,
        start_prices: dict[str, float] | None = None,
        volatility_per_tick: float = 0.0008,
    ) -> None:
        self._rng = random.Random(seed)
        self._volatility = volatility_per_tick
        overrides = start_prices or {}
        self._walks: dict[str, _Walk] = {}
        for symbol in symbols:
            price, supply, volume = START_PRICES.get(symbol, DEFAULT_START)
            price = overrides.get(symbol, price)
            week_drift = 0.0 if symbol in STABLECOINS else self._rng.gauss(0, 0.05)
            self._walks[symbol] = _Walk(price, price, supply, volume, price / math.exp(week_drift))

    def step(self) -> list[PriceQuote]:
        """Advance every walk one tick and return the new quotes."""
        now = utc_now()
        quotes = []
        for symbol, walk in self._walks.items():
            sigma = self._volatility * (0.02 if symbol in STABLECOINS else 1.0)
            walk.price *= math.exp(self._rng.gauss(0, sigma))
            walk.volume *= math.exp(self._rng.gauss(0, 0.002))
            quotes.append(
                PriceQuote(
                    symbol=symbol,
                    price=walk.price,
                    source=SIMULATOR_SOURCE,
                    timestamp=now,
                    change_24h=(walk.price / walk.start - 1) * 100,
                    change_7d=(walk.price / walk.week_open - 1) * 100,
                    volume_24h=walk.volume,
                    market_cap=walk.price * walk.supply,
                )
            )
        return quotes
