"""The five WebSocket endpoints, each a thin adapter from one bus topic to a socket session.

`SocketLane` answers a WebSocket scope for one of the five paths itself, before FastAPI's
middleware stack and router (#13). Those layers do nothing for a socket (they are HTTP's: body
limits, rate limits, request counting, exception pages), but each stays suspended in its
`__call__` for the connection's whole life: a dozen coroutines, their frames, cells and send
wrappers per socket, which every garbage collection walked (14 coroutines of 168 tracked objects per
live socket, measured). Any other scope, and a WebSocket on any other path, goes on to the app.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from core.endpoints import MARKET_PATH, MODELS_PATH, NEWS_PATH, SENTIMENT_PATH, STATUS_PATH
from ws.direct import RAW_SEND_KEY
from ws.session import EndpointSpec, Session, SocketRegistry

__all__ = ["ENDPOINTS", "SocketLane"]

ENDPOINTS = (
    EndpointSpec(STATUS_PATH, "system"),
    EndpointSpec(MARKET_PATH, "market", frozenset({"subscribe", "unsubscribe", "get_all"})),
    EndpointSpec(NEWS_PATH, "news", frozenset({"filter"}), greet_with_snapshot=False),
    EndpointSpec(SENTIMENT_PATH, "sentiment"),
    EndpointSpec(MODELS_PATH, "models"),
)


class SocketLane:
    """ASGI middleware, outermost: the five endpoints' sockets go straight to their sessions.

    Args:
        hub: the sessions' registry.
        direct_writes: leave the server's own `send` in the scope, so sessions may write frames
            straight to its transport (ws/direct.py).
    """

    def __init__(self, app: ASGIApp, hub: SocketRegistry, direct_writes: bool = True) -> None:
        self.app = app
        self.hub = hub
        self.direct_writes = direct_writes
        self.specs = {spec.path: spec for spec in ENDPOINTS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = self.specs.get(_path(scope)) if scope["type"] == "websocket" else None
        if spec is None:
            await self.app(scope, receive, send)
            return
        if self.direct_writes:
            scope[RAW_SEND_KEY] = send
        await Session(WebSocket(scope, receive, send), spec, self.hub).serve()


def _path(scope: Scope) -> Any:
    # Behind a proxy that sets root_path, Starlette's scope path still carries the prefix.
    root = scope.get("root_path", "")
    path = scope["path"]
    return path[len(root):] if root and path.startswith(root) else path
