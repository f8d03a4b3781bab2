"""`GET /api/prices`, `GET /api/history/{symbol}`, `GET /api/sentiment/market`, `GET /api/status`, `GET /health`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response

from core.bus import Bus
from core.protocol import SentimentUpdateMessage, SystemStatusMessage
from core.rest import Health, PriceHistory, PriceQuote, Prices, RestErrorCode, error_detail, error_responses
from core.store import Store
from desk.market import MarketDesk, price_message

__all__ = ["StoreQuery", "build_market_router"]

# Runs one store read on the REST threads (the runtime's `query_store`).
StoreQuery = Callable[..., Awaitable[Any]]


def build_market_router(
    *, market: MarketDesk, bus: Bus, store: Store, symbols: Sequence[str], data_mode: str,
    agent_running: Callable[[], bool], query: StoreQuery,
) -> APIRouter:
    """Return the market and status routes, answered from `market`, the bus's latest messages and `store`."""
    router = APIRouter()

    @router.get("/health", tags=["system"], response_model=Health, responses=error_responses(429))
    async def health() -> Health:
        """Answer 200 once the app serves, with what it runs on."""
        return Health(status="ok", data_mode=data_mode, market_source=market.source_label,
                      agent_running=agent_running())

    @router.get("/api/status", tags=["system"], response_model=SystemStatusMessage,
                responses=error_responses(429, 503))
    async def status() -> Response:
        """Return the latest `system_status` message."""
        return _latest(bus, "system", "no system_status published yet; retry in a few seconds")

    @router.get("/api/prices", tags=["market"], response_model=Prices, responses=error_responses(404, 422, 429))
    async def prices(
        symbols_wanted: str | None = Query(
            default=None, alias="symbols", max_length=2000,
            description="comma-separated symbols, e.g. `BTC,ETH` (any case); every tracked symbol when absent"),
    ) -> Prices:
        """Return the latest price of the tracked symbols asked for, or of all (the same data as `price_update`)."""
        wanted = _symbol_list(symbols_wanted, symbols)
        messages = [price_message(quote) for quote in market.current_quotes()
                    if wanted is None or quote.symbol in wanted]
        return Prices(simulated=market.simulated,
                      prices=[PriceQuote(source=message.source, data=message.data) for message in messages])

    @router.get("/api/history/{symbol}", tags=["market"], response_model=PriceHistory,
                responses=error_responses(404, 422, 429, 503))
    async def history(
        symbol: str = Path(max_length=15),
        interval: Literal["1m", "1h", "1d"] = Query(default="1m"),
        limit: int = Query(default=500, ge=1, le=5000),
    ) -> PriceHistory:
        """Return stored prices of one symbol in buckets (open/high/low/close per interval), oldest first.

        Answered from rollups kept on write: at most `limit` rows read, whatever the store's age.
        """
        symbol = symbol.upper()
        _refuse_untracked(frozenset({symbol}), symbols)
        try:
            points = await query(store.price_history, symbol, interval, limit)
        except Exception as exc:
            raise HTTPException(503, error_detail(
                RestErrorCode.DATABASE_UNAVAILABLE, f"database unavailable: {type(exc).__name__}")) from exc
        return PriceHistory.model_validate({"symbol": symbol, "interval": interval, "points": points})

    @router.get("/api/sentiment/market", tags=["sentiment"], response_model=SentimentUpdateMessage,
                responses=error_responses(429, 503))
    async def market_sentiment() -> Response:
        """Return the latest `sentiment_update` message."""
        return _latest(bus, "sentiment", "no sentiment_update published yet")

    return router


def _symbol_list(asked: str | None, tracked: Sequence[str]) -> frozenset[str] | None:
    """The tracked symbols named in `asked` (comma-separated, any case); None when nothing was asked.

    Raises:
        HTTPException: 422 when `asked` names no symbol; 404 from `_refuse_untracked`.
    """
    if asked is None:
        return None
    wanted = frozenset(part.strip().upper() for part in asked.split(",") if part.strip())
    if not wanted:
        raise HTTPException(422, error_detail(
            RestErrorCode.INVALID_REQUEST, "symbols names no symbol; send e.g. ?symbols=BTC,ETH or leave it out"))
    _refuse_untracked(wanted, tracked)
    return wanted


def _refuse_untracked(wanted: frozenset[str], tracked: Sequence[str]) -> None:
    """Raise a 404 naming the symbols of `wanted` that are not tracked, and the tracked ones."""
    unknown = sorted(wanted - set(tracked))
    if unknown:
        named = ", ".join(repr(symbol) for symbol in unknown)[:200]
        raise HTTPException(404, error_detail(
            RestErrorCode.UNKNOWN_SYMBOL, f"unknown symbol(s) {named}; tracked: {', '.join(tracked)}"))


def _latest(bus: Bus, topic: str, missing: str) -> Response:
    """Answer the topic's latest message as the bus serialized it (no second encoding); 503 before the first."""
    latest = bus.latest(topic)
    if latest is None:
        raise HTTPException(503, error_detail(RestErrorCode.NOT_PUBLISHED_YET, missing))
    return Response(latest.text, media_type="application/json")
