"""The five WebSocket endpoints: each a thin adapter from one bus topic to a socket session."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from core.endpoints import MARKET_PATH, MODELS_PATH, NEWS_PATH, SENTIMENT_PATH, STATUS_PATH
from ws.session import EndpointSpec, Session, SocketRegistry

__all__ = ["ENDPOINTS", "build_ws_router"]

ENDPOINTS = (
    EndpointSpec(STATUS_PATH, "system"),
    EndpointSpec(MARKET_PATH, "market", frozenset({"subscribe", "unsubscribe", "get_all"})),
    EndpointSpec(NEWS_PATH, "news", frozenset({"filter"}), greet_with_snapshot=False),
    EndpointSpec(SENTIMENT_PATH, "sentiment"),
    EndpointSpec(MODELS_PATH, "models"),
)


def build_ws_router(registry: SocketRegistry) -> APIRouter:
    """Return a router with one WebSocket route per endpoint, all served by `registry`."""
    router = APIRouter()
    for spec in ENDPOINTS:
        router.add_api_websocket_route(spec.path, _serve_with(spec, registry), name=f"ws:{spec.topic}")
    return router


def _serve_with(spec: EndpointSpec, registry: SocketRegistry):  # type: ignore[no-untyped-def]
    async def endpoint(websocket: WebSocket) -> None:
        await Session(websocket, spec, registry).serve()

    return endpoint
