"""`GET /api/prices`, `GET /api/history/{symbol}`, `GET /api/sentiment/market`, `GET /health`."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request

from desk.market import price_message

__all__ = ["router"]

router = APIRouter()


@router.get("/health", tags=["system"])
async def health(request: Request) -> dict[str, Any]:
    """Answer 200 once the app serves, with what it runs on."""
    runtime = request.app.state.runtime
    return {"status": "ok", "data_mode": runtime.settings.data_mode, "market_source": runtime.market.source_label,
            "agent_running": runtime.agent_running}


@router.get("/api/status", tags=["system"])
async def status(request: Request) -> Any:
    """Return the latest `system_status` message."""
    latest = request.app.state.runtime.bus.latest("system")
    if latest is None:
        raise HTTPException(503, "no system_status published yet; retry in a few seconds")
    return json.loads(latest.text)


@router.get("/api/prices", tags=["market"])
async def prices(request: Request) -> dict[str, Any]:
    """Return the latest price of every tracked symbol (the same data as `price_update`)."""
    runtime = request.app.state.runtime
    quotes = runtime.market.current_quotes()
    return {
        "simulated": runtime.market.simulated,
        "prices": [json.loads(price_message(q).model_dump_json(include={"source", "data"})) for q in quotes],
    }


@router.get("/api/history/{symbol}", tags=["market"])
async def history(
    request: Request,
    symbol: str = Path(max_length=15),
    interval: Literal["1m", "1h", "1d"] = Query(default="1m"),
    limit: int = Query(default=500, ge=1, le=5000),
) -> dict[str, Any]:
    """Return stored prices of one symbol in buckets (open/high/low/close per interval), oldest first.

    Answered from rollups kept on write: at most `limit` rows read, whatever the store's age.
    """
    runtime = request.app.state.runtime
    symbol = symbol.upper()
    if symbol not in runtime.settings.symbols:
        raise HTTPException(404, f"unknown symbol {symbol!r}; tracked: {', '.join(runtime.settings.symbols)}")
    try:
        points = await runtime.query_store(runtime.store.price_history, symbol, interval, limit)
    except Exception as exc:
        raise HTTPException(503, f"database unavailable: {type(exc).__name__}") from exc
    return {"symbol": symbol, "interval": interval, "points": points}


@router.get("/api/sentiment/market", tags=["sentiment"])
async def market_sentiment(request: Request) -> Any:
    """Return the latest `sentiment_update` data."""
    latest = request.app.state.runtime.bus.latest("sentiment")
    if latest is None:
        raise HTTPException(503, "no sentiment_update published yet")
    return json.loads(latest.text)
