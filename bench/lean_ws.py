"""A lean WebSocket client for the load generators: one asyncio Protocol per socket, no task, no queue.

`websockets.connect` costs a reader task, a message queue and several layers per frame; with
hundreds of sockets per load-generator process on 2 shared cores that cost showed up in the
latencies it was measuring (the news frames of one item reach 300 sockets at once, and the last one
was read tens of milliseconds after it arrived). This client parses the server's frames in
`data_received`, so each message is timed when its bytes reach the process. It speaks what the
soak needs of RFC 6455: the opening handshake (checked), unmasked text frames from the server
(continuations joined), pings answered with pongs, the closing handshake, and masked text frames
to the server. Not in CI; tests/test_lean_ws.py runs it against the real app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["HandshakeFailed", "LeanSocket"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _CONTINUATION, _CLOSE, _PING, _PONG = 0x1, 0x0, 0x8, 0x9, 0xA


class HandshakeFailed(Exception):
    """The server did not switch protocols (its status line is the message)."""


class LeanSocket(asyncio.Protocol):
    """One client socket. `on_text(text)` runs in `data_received`, once per text message."""

    def __init__(self, on_text: Callable[[str], None], request: bytes, accept: bytes) -> None:
        self.on_text = on_text
        self._request = request
        self._accept = accept
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()  # the close code, once the socket is gone
        self.close_code: int | None = None
        self.close_received = False
        self._close_sent = False

    @classmethod
    async def connect(cls, url: str, on_text: Callable[[str], None], *, timeout: float = 60.0) -> LeanSocket:
        """Open `ws://host:port/path?query` and complete the opening handshake.

        Raises:
            OSError, TimeoutError: no connection. HandshakeFailed: the server refused the upgrade.
        """
        parts = urlsplit(url)
        key = base64.b64encode(os.urandom(16))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, protocol = await loop.create_connection(
                lambda: cls(on_text, request, accept), parts.hostname or "127.0.0.1", parts.port or 80
            )
            await protocol._opened
        return protocol

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert hasattr(transport, "write")  # a stream transport (asyncio's or uvloop's)
        self._transport = transport  # type: ignore[assignment]
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._opened.done() and not self._read_handshake():
            return
        self._read_frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc or ConnectionResetError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    # ------------------------------------------------------------ client side

    def send(self, text: str) -> None:
        """Send one masked text frame."""
        self._write_frame(_TEXT, text.encode())

    async def close(self, code: int = 1000, timeout: float = 10.0) -> None:
        """Start the closing handshake and wait for the socket to go (bounded)."""
        if self._transport is not None and not self._close_sent:
            self._close_sent = True
            self._write_frame(_CLOSE, code.to_bytes(2, "big"))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()

    # ------------------------------------------------------------ parsing

    def _read_handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status, *headers = head.split("\r\n")
        fields = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in headers)}
        if " 101 " not in f"{status} " or fields.get("sec-websocket-accept", "").encode() != self._accept:
            self._opened.set_exception(HandshakeFailed(status))
            assert self._transport is not None
            self._transport.close()
            return False
        self._opened.set_result(None)
        return True

    def _read_frames(self) -> None:
        buffer, offset = self._buffer, 0
        while len(buffer) - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            size, start = second & 0x7F, offset + 2
            if size == 126:
                if len(buffer) - start < 2:
                    break
                size, start = int.from_bytes(buffer[start : start + 2], "big"), start + 2
            elif size == 127:
                if len(buffer) - start < 8:
                    break
                size, start = int.from_bytes(buffer[start : start + 8], "big"), start + 8
            if len(buffer) - start < size:
                break
            payload = bytes(buffer[start : start + size])
            offset = start + size
            self._on_frame(first & 0x0F, bool(first & 0x80), payload)
        del buffer[:offset]

    def _on_frame(self, opcode: int, final: bool, payload: bytes) -> None:
        if opcode in (_TEXT, _CONTINUATION):
            self._fragments.append(payload)
            if final:
                text = b"".join(self._fragments).decode("utf-8")
                self._fragments.clear()
                self.on_text(text)
        elif opcode == _PING:
            self._write_frame(_PONG, payload)
        elif opcode == _CLOSE:
            self.close_received = True
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self._close_sent:
                self._close_sent = True
                self._write_frame(_CLOSE, payload[:2])
            assert self._transport is not None
            self._transport.close()

    def _write_frame(self, opcode: int, payload: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        size = len(payload)
        if size < 126:
            header = bytes((0x80 | opcode, 0x80 | size))
        elif size < 1 << 16:
            header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        repeated = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
        self._transport.write(header + mask + masked)
