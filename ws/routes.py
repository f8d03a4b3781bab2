"""The five WebSocket endpoints: each a thin adapter from one bus topic to a socket session."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from ws.session import EndpointSpec, Session, SocketHub

__all__ = ["ENDPOINTS", "build_ws_router"]

ENDPOINTS = (
    EndpointSpec("/api/monitoring/ws", "system"),
    EndpointSpec("/ws/market_data", "market", frozenset({"subscribe", "unsubscribe", "get_all"})),
    EndpointSpec("/ws/news", "news", frozenset({"filter"}), greet_with_snapshot=False),
    EndpointSpec("/ws/sentiment", "sentiment"),
    EndpointSpec("/ws/huggingface", "models"),
)


def build_ws_router(hub: SocketHub) -> APIRouter:
    """Return a router with one WebSocket route per endpoint, all served by `hub`."""
    router = APIRouter()
    for spec in ENDPOINTS:
        router.add_api_websocket_route(spec.path, _serve_with(spec, hub), name=f"ws:{spec.topic}")
    return router


def _serve_with(spec: EndpointSpec, hub: SocketHub):  # type: ignore[no-untyped-def]
    async def endpoint(websocket: WebSocket) -> None:
        await Session(websocket, spec, hub).serve()

    return endpoint
