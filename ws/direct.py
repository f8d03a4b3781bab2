"""Write text frames straight to a connection's transport, each frame built once for every socket.

A frame through ASGI goes `WebSocket.send_text` -> Starlette's state checks -> the exception
middleware's wrapper -> uvicorn's `send` -> websockets' `Frame.serialize` -> `transport.write`: some
40 % of a fan-out's time on top of the write syscall itself, repeated per socket for the same bytes.
Server frames are never masked, and with no extension negotiated a text frame's bytes depend only
on its text, so `text_frame()` builds them once per message and `DirectWriter` hands them to the
transport, every frame queued for one socket in a single write.

It is taken only where it is the same as what uvicorn would do: uvicorn's websockets-sansio
protocol (`KeepRawSend` leaves its `send` in the scope), no extension (permessage-deflate off), the
connection open, the transport not paused and no close sent. Anything else, and any socket whose
transport pushes back, takes the ASGI path with its drain task and slow-consumer rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from websockets.protocol import State

__all__ = ["RAW_SEND_KEY", "DirectWriter", "KeepRawSend", "text_frame"]

RAW_SEND_KEY = "hub.raw_send"
_FIN_TEXT = 0x81


@lru_cache(maxsize=512)
def text_frame(text: str) -> bytes:
    """Return the unmasked, final, uncompressed text frame that carries `text` (RFC 6455 5.2)."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        header = bytes((_FIN_TEXT, size))
    elif size < 1 << 16:
        header = bytes((_FIN_TEXT, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((_FIN_TEXT, 127)) + size.to_bytes(8, "big")
    return header + payload


class DirectWriter:
    """The transport of one uvicorn websockets-sansio connection, for frames built by `text_frame()`."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    @classmethod
    def for_scope(cls, scope: Mapping[str, Any]) -> DirectWriter | None:
        """Return a writer for this connection, or None where only the ASGI path is safe."""
        protocol = getattr(scope.get(RAW_SEND_KEY), "__self__", None)
        conn = getattr(protocol, "conn", None)
        if (
            conn is None
            or getattr(conn, "extensions", None) != []
            or not hasattr(protocol, "transport")
            or not hasattr(protocol, "writable")
            or not hasattr(protocol, "close_sent")
        ):
            return None
        return cls(protocol)

    def ready(self) -> bool:
        """Return whether a write now goes out as uvicorn's own would: open, not paused, not closing."""
        protocol = self._protocol
        return (
            protocol.writable.is_set()
            and not protocol.close_sent
            and protocol.conn.state is State.OPEN
            and not protocol.transport.is_closing()
        )

    def write(self, texts: list[str]) -> None:
        """Write the frames of `texts`, in order, in one transport write."""
        frames = [text_frame(text) for text in texts]
        self._protocol.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))


class KeepRawSend:
    """ASGI middleware, outermost: leaves the server's own `send` of a WebSocket in its scope."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        scope[RAW_SEND_KEY] = send
        try:
            await self.app(scope, receive, send)
        finally:
            # `send` is a bound method of the server's protocol, which holds this scope: without
            # this the entry keeps every closed connection in a reference cycle that only the
            # garbage collector frees, a pause under churn.
            scope.pop(RAW_SEND_KEY, None)
