"""uvicorn's HTTP and WebSocket protocols, subclassed so that a closed connection leaves no cycle.

Under churn every closed connection that sits in a reference cycle waits for a collection, and the
collector frees them all at once while the event loop stands still. Two of uvicorn's:

- uvicorn drops an HTTP protocol's parser in `connection_lost`, but an upgraded connection reports
  its loss to the WebSocket protocol, so the HTTP protocol and its parser (whose callbacks are that
  protocol's bound methods) stay in a cycle from the upgrade on.
- After a closing handshake websockets' parser waits, suspended in a generator that holds its
  protocol, for the end of the stream; uvicorn never reports it, so the protocol and the generator
  keep each other alive (with the reader and the close frames).
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["http_protocol", "websocket_protocol"]


def http_protocol() -> Any:
    """Return uvicorn's httptools protocol, releasing its parser at upgrade; "auto" without httptools."""
    if importlib.util.find_spec("httptools") is None:
        return "auto"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class ReleasingHttpToolsProtocol(HttpToolsProtocol):
        def handle_websocket_upgrade(self) -> None:
            super().handle_websocket_upgrade()
            # The connection belongs to the WebSocket protocol now; this one reads nothing more.
            self.parser = None  # type: ignore[assignment]

    return ReleasingHttpToolsProtocol


def websocket_protocol() -> Any:
    """Return uvicorn's websockets-sansio protocol, ending websockets' parser when the connection is lost."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class EndingWebSocketsProtocol(WebSocketsSansIOProtocol):
        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            # Nothing more will be read: closing the generator ends its frame, and with it the
            # frame's reference back to the protocol.
            self.conn.parser.close()

    return EndingWebSocketsProtocol
