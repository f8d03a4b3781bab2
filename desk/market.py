"""The market desk: keeps the latest quote per symbol and publishes `price_update` at a fixed cadence.

Live providers feed `accept_quotes()` with fused quotes; the labelled simulator fills in only in
`demo` mode, or in `auto` mode while no live provider has answered yet. When live data stops,
subscribers get one `CONNECTION_ERROR` and the last known values go on with their age.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from core.bus import Bus
from core.clock import format_utc, utc_now
from core.config import DataMode
from core.protocol import ErrorCode, ErrorDetail, PriceData, PriceUpdateMessage, StreamErrorMessage
from core.records import PriceQuote
from sources.simulator import SIMULATOR_SOURCE, MarketSimulator

__all__ = ["MarketDesk", "price_message"]

logger = logging.getLogger(__name__)


def price_message(quote: PriceQuote, now: datetime | None = None) -> PriceUpdateMessage:
    """Build the `price_update` message of one quote."""
    now = now or utc_now()
    return PriceUpdateMessage(
        source=quote.source,
        data=PriceData(
            symbol=quote.symbol,
            price=quote.price,
            change_24h=quote.change_24h,
            change_7d=quote.change_7d,
            volume_24h=quote.volume_24h,
            market_cap=quote.market_cap,
            timestamp=format_utc(quote.timestamp),
            age_s=round(max(0.0, (now - quote.timestamp).total_seconds()), 3),
        ),
    )


class MarketDesk:
    """Latest quote per symbol, the data-mode policy and the 1 s publishing tick."""

    def __init__(
        self,
        bus: Bus,
        symbols: tuple[str, ...],
        mode: DataMode,
        simulator: MarketSimulator,
        *,
        live_is_up: Callable[[], bool] = lambda: False,
    ) -> None:
        self.bus = bus
        self.symbols = symbols
        self.mode = mode
        self.simulator = simulator
        self.live_is_up = live_is_up
        self.live_quotes: dict[str, PriceQuote] = {}
        self.sim_quotes: dict[str, PriceQuote] = {}
        self.live_seen = False
        self._outage_reported = False

    @property
    def simulated(self) -> bool:
        """Whether the stream now carries simulated prices."""
        return self.mode == "demo" or (self.mode == "auto" and not self.live_seen)

    def accept_quotes(self, quotes: list[PriceQuote]) -> None:
        """Take fused live quotes (the market poller's callback)."""
        for quote in quotes:
            if quote.symbol in self.symbols and quote.price > 0:
                self.live_quotes[quote.symbol] = quote
        if quotes and not self.live_seen:
            logger.info("market: first live quotes arrived; leaving the simulator")
        self.live_seen = self.live_seen or bool(quotes)

    def current_quotes(self) -> list[PriceQuote]:
        """Return the quotes the stream carries now (simulated or live)."""
        if self.simulated:
            return [self.sim_quotes[s] for s in self.symbols if s in self.sim_quotes]
        return [self.live_quotes[s] for s in self.symbols if s in self.live_quotes]

    async def tick_in_turns(self) -> list[PriceQuote]:
        """Publish one `price_update` per symbol with a current value, handing the event loop back after
        each symbol's fan-out; report outages once.

        A whole tick fanned out in one step held the loop 30 ms (p50) every second with 200
        market sockets, and a news item committed meanwhile waited for all of it; now it
        waits for one symbol's fan-out at most.
        """
        quotes = self._advance()
        now = utc_now()
        for i, quote in enumerate(quotes):
            if i:
                await asyncio.sleep(0)
            self._publish(quote, now)
        return quotes

    def _advance(self) -> list[PriceQuote]:
        if self.simulated:
            for quote in self.simulator.step():
                self.sim_quotes[quote.symbol] = quote
        elif self.live_seen:
            self._report_outage_once()
        return self.current_quotes()

    def _publish(self, quote: PriceQuote, now: datetime) -> None:
        self.bus.publish("market", price_message(quote, now), key=quote.symbol, source=quote.source)

    def _report_outage_once(self) -> None:
        up = self.live_is_up()
        if not up and not self._outage_reported:
            self._outage_reported = True
            logger.warning("market: every live provider is down; serving last known values with their age")
            self.bus.publish("market", StreamErrorMessage(error=ErrorDetail(
                code=ErrorCode.CONNECTION_ERROR,
                message="Every market data provider is unreachable",
                details="last known prices continue with their age_s; streaming resumes when a provider returns",
            )))
        elif up and self._outage_reported:
            self._outage_reported = False
            logger.info("market: a live provider is back")

    @property
    def source_label(self) -> str:
        """Return what the market stream runs on now, for status and UI."""
        return SIMULATOR_SOURCE if self.simulated else "live"
