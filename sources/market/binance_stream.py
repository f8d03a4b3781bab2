"""The Binance `!miniTicker@arr` WebSocket: about one price batch per second, pushed to a callback.

The stream is the primary price source; REST providers take over while it is down (`SourceService`
skips Binance REST only while this stream is fresh). Connection health is kept in a
`ProviderState` registered in the market pool, so it shows in `health()` like any provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from core.clock import utc_now
from core.records import PriceQuote

from ..errors import UpstreamBlocked, UpstreamGarbage
from ..geoblock import blocked_error, is_geo_block
from ..pool import ProviderState, section_default, unblocked_fix
from ..symbols import SYMBOLS, provider_ids
from .binance import parse_binance_mini_tickers

__all__ = ["BinanceStream"]

logger = logging.getLogger(__name__)

OnQuotes = Callable[[list[PriceQuote]], Awaitable[None]]


class BinanceStream:
    """A self-healing subscription to Binance mini tickers.

    Args:
        url: stream URL (`BINANCE_WS_URL`); default that setting's default, a `!miniTicker@arr` stream.
        symbols: our symbols; other pairs in each message are ignored.
        open_timeout_s: connect + handshake limit.
        idle_timeout_s: no message for this long means a silent dead connection: reconnect.
        max_message_bytes: a bigger frame closes the connection (1009) and counts as a failure.
        base_backoff_s, max_backoff_s: reconnect delay doubles per failed attempt up to the cap.
        clock: monotonic seconds, shared with the pool that owns the `ProviderState`.
    """

    name = "binance_ws"

    def __init__(
        self,
        *,
        url: str | None = None,
        symbols: Iterable[str] = SYMBOLS,
        open_timeout_s: float = 10.0,
        idle_timeout_s: float = 30.0,
        max_message_bytes: int = 4_000_000,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_timeout_s <= 0 or open_timeout_s <= 0:
            raise ValueError(f"timeouts must be > 0, got open={open_timeout_s!r} idle={idle_timeout_s!r}")
        self.url = url or section_default("binance_ws_url")
        self.ids = provider_ids("binance", symbols)
        self.open_timeout_s = open_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_message_bytes = max_message_bytes
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self.connected = False
        self.messages = 0

    async def run(self, on_quotes: OnQuotes, state: ProviderState) -> None:
        """Connect, read, reconnect with backoff; return only when cancelled."""
        attempt = 0
        while True:
            seen_before = self.messages
            try:
                await self._read_once(on_quotes, state)
                attempt += 1  # it gave up on a stream of garbage frames (already counted)
            except asyncio.CancelledError:
                raise
            except UpstreamBlocked as exc:
                # Refused for this location: no reconnect ladder, one re-check per hold.
                attempt += 1
                state.record_failure(self._clock(), exc)
                state.record_blocked(self._clock(), exc, self.blocked_fix())
                logger.warning("! %s blocked here: %s", self.name, state.blocked_reason)
            except (OSError, TimeoutError, WebSocketException, UpstreamGarbage) as exc:
                # A connection that delivered data and then dropped starts the backoff afresh.
                attempt = 1 if self.messages > seen_before else attempt + 1
                state.record_failure(self._clock(), exc)
                logger.warning(
                    "! %s failed (%s): %s [attempt %d, breaker %s]",
                    self.name,
                    type(exc).__name__,
                    exc or "no detail",
                    attempt,
                    state.breaker.state,
                )
            finally:
                self.connected = False
            await asyncio.sleep(self._next_delay(attempt, state))

    def blocked_fix(self) -> str | None:
        """Return what to set when this stream is geo-blocked here, or None if nothing known helps."""
        return unblocked_fix("binance_ws_url", self.url)

    def _next_delay(self, attempt: int, state: ProviderState) -> float:
        delay = min(self.base_backoff_s * 2.0 ** (attempt - 1), self.max_backoff_s)
        reopens = state.breaker.reopens_at
        if reopens is not None:
            delay = max(delay, reopens - self._clock())
        return delay

    async def _read_once(self, on_quotes: OnQuotes, state: ProviderState) -> None:
        """Read one connection until it fails (raises) or sends only garbage (returns)."""
        try:
            websocket = await connect(
                self.url,
                open_timeout=self.open_timeout_s,
                max_size=self.max_message_bytes,
                ping_interval=20.0,
                ping_timeout=20.0,
                close_timeout=2.0,
                proxy=None,
            )
        except InvalidStatus as exc:
            # The handshake's HTTP answer: a 451 (or a geo-block 403) is a location block.
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", errors="replace") if exc.response.body else ""
            if is_geo_block(status, body):
                raise blocked_error(status, self.url, body) from exc
            raise
        async with websocket:
            self.connected = True
            logger.info("+ %s connected to %s", self.name, self.url)
            while True:
                async with asyncio.timeout(self.idle_timeout_s):
                    raw = await websocket.recv()
                self.messages += 1
                rejects: list[str] = []
                try:
                    quotes = parse_binance_mini_tickers(raw, self.ids, rejects=rejects)
                except UpstreamGarbage as exc:
                    state.record_failure(self._clock(), exc)
                    logger.warning("! %s sent garbage: %s", self.name, exc)
                    if state.breaker.state == "open":
                        return  # too many bad frames in a row: drop the connection and back off
                    continue
                if rejects:
                    # The same bad ticker every second would flood the log: warn when it changes.
                    level = logging.DEBUG if rejects == state.last_rejects else logging.WARNING
                    sample = "; ".join(rejects[:3])
                    logger.log(level, "! %s skipped %d bad tickers: %s", self.name, len(rejects), sample)
                state.record_success(self._clock(), self._lag_ms(quotes), rejects)
                if quotes:
                    try:
                        await on_quotes(quotes)
                    except Exception:
                        # The consumer's bug must not tear down a healthy stream.
                        logger.exception("! %s on_quotes callback failed", self.name)

    @staticmethod
    def _lag_ms(quotes: list[PriceQuote]) -> float:
        # For a push stream, "latency" is how old the newest event is when it reaches us.
        if not quotes:
            return 0.0
        newest = max(quote.timestamp for quote in quotes)
        return max(0.0, (utc_now() - newest).total_seconds() * 1000.0)
