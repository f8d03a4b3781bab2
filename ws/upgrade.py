"""The HTTP protocol that hands a connection to the WebSocket protocol and lets go of it.

uvicorn drops an HTTP protocol's parser in `connection_lost`, but an upgraded connection reports
its loss to the WebSocket protocol, so the HTTP protocol and its parser (whose callbacks are that
protocol's bound methods) stay in a reference cycle from the upgrade on. Only the garbage
collector frees them, and under churn its pauses grow with every closed socket waiting there (#13).
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["http_protocol"]


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
