"""Which request or connection a log line belongs to: its id, path and client, for every line logged meanwhile.

`LogContext`, an ASGI middleware just inside `ClientAddress` (so the client is the address that one
resolved, not the raw peer), sets a context variable for each HTTP request and WebSocket connection.
Every line logged while serving it, by us, uvicorn's access log or a library, carries it: core/logs.py
writes it as JSON fields and at the end of a text line. Tasks started meanwhile copy the context, as
asyncio tasks do; code called from elsewhere (the bus offering a frame to a socket) passes a session's
own context with `extra=served.fields()`.

An HTTP response carries its id in `X-Request-ID`, so a client can quote the id its log lines carry.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from core.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_HEADER", "LogContext", "Served", "current_served", "new_id"]

REQUEST_ID_HEADER = b"x-request-id"


@dataclass(frozen=True, slots=True)
class Served:
    """The HTTP request or WebSocket connection being served."""

    kind: Literal["request", "connection"]
    id: str
    path: str
    client: str

    def fields(self) -> dict[str, str]:
        """Return the log fields: `request_id` or `connection_id`, `path`, `client`."""
        return {f"{self.kind}_id": self.id, "path": self.path, "client": self.client}


_SERVED: ContextVar[Served | None] = ContextVar("hub_served", default=None)


def current_served() -> Served | None:
    """Return the request or connection being served in this context, or None outside one."""
    return _SERVED.get()


def new_id() -> str:
    """Return a fresh id: 12 hex digits, unique enough to search a day of logs for."""
    return secrets.token_hex(6)


class LogContext:
    """ASGI middleware: give each HTTP request and WebSocket connection an id its log lines carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        served = Served("request" if kind == "http" else "connection", new_id(), scope.get("path", ""),
                        client[0] if client else "unknown")
        token = _SERVED.set(served)
        try:
            if kind == "http":
                await self.app(scope, receive, _with_request_id(send, served.id.encode("ascii")))
            else:
                # A WebSocket's `send` stays the server's own (ws/direct.py writes frames around it).
                await self.app(scope, receive, send)
        finally:
            _SERVED.reset(token)


def _with_request_id(send: Send, request_id: bytes) -> Send:
    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[Any] = list(message.get("headers", ()))
            headers.append((REQUEST_ID_HEADER, request_id))
            message["headers"] = headers
        await send(message)

    return send_with_id
