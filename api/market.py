"""`GET /api/prices`, `GET /api/history/{symbol}`, `GET /api/sentiment/market`, `GET /health`."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from core.protocol import SentimentUpdateMessage, SystemStatusMessage
from core.rest import Health, PriceHistory, PriceQuote, Prices, RestErrorCode, error_detail, error_responses
from desk.market import price_message

__all__ = ["router"]

router = APIRouter()


@router.get("/health", tags=["system"], response_model=Health, responses=error_responses(429))
async def health(request: Request) -> Health:
    """Answer 200 once the app serves, with what it runs on."""
    runtime = request.app.state.runtime
    return Health(status="ok", data_mode=runtime.settings.data_mode, market_source=runtime.market.source_label,
                  agent_running=runtime.agent_running)


@router.get("/api/status", tags=["system"], response_model=SystemStatusMessage, responses=error_responses(429, 503))
async def status(request: Request) -> Response:
    """Return the latest `system_status` message."""
    latest = request.app.state.runtime.bus.latest("system")
    if latest is None:
        raise HTTPException(503, error_detail(RestErrorCode.NOT_PUBLISHED_YET,
                                              "no system_status published yet; retry in a few seconds"))
    # The message as the bus serialized it (from SystemStatusMessage): no second encoding.
    return Response(latest.text, media_type="application/json")


@router.get("/api/prices", tags=["market"], response_model=Prices, responses=error_responses(429))
async def prices(request: Request) -> Prices:
    """Return the latest price of every tracked symbol (the same data as `price_update`)."""
    runtime = request.app.state.runtime
    messages = [price_message(quote) for quote in runtime.market.current_quotes()]
    return Prices(simulated=runtime.market.simulated,
                  prices=[PriceQuote(source=message.source, data=message.data) for message in messages])


@router.get("/api/history/{symbol}", tags=["market"], response_model=PriceHistory,
            responses=error_responses(404, 422, 429, 503))
async def history(
    request: Request,
    symbol: str = Path(max_length=15),
    interval: Literal["1m", "1h", "1d"] = Query(default="1m"),
    limit: int = Query(default=500, ge=1, le=5000),
) -> PriceHistory:
    """Return stored prices of one symbol in buckets (open/high/low/close per interval), oldest first.

    Answered from rollups kept on write: at most `limit` rows read, whatever the store's age.
    """
    runtime = request.app.state.runtime
    symbol = symbol.upper()
    if symbol not in runtime.settings.symbols:
        raise HTTPException(404, error_detail(
            RestErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}; tracked: {', '.join(runtime.settings.symbols)}"))
    try:
        points = await runtime.query_store(runtime.store.price_history, symbol, interval, limit)
    except Exception as exc:
        raise HTTPException(503, error_detail(
            RestErrorCode.DATABASE_UNAVAILABLE, f"database unavailable: {type(exc).__name__}")) from exc
    return PriceHistory.model_validate({"symbol": symbol, "interval": interval, "points": points})


@router.get("/api/sentiment/market", tags=["sentiment"], response_model=SentimentUpdateMessage,
            responses=error_responses(429, 503))
async def market_sentiment(request: Request) -> Response:
    """Return the latest `sentiment_update` message."""
    latest = request.app.state.runtime.bus.latest("sentiment")
    if latest is None:
        raise HTTPException(503, error_detail(RestErrorCode.NOT_PUBLISHED_YET,
                                              "no sentiment_update published yet"))
    return Response(latest.text, media_type="application/json")
