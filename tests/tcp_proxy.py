"""A TCP proxy on a free loopback port that can delay or drop what the server answers (or what it is sent).

Put it in front of a real redis-server to make its replies late (past the client's socket timeout) or
lost, while Redis itself executes every command it receives: exactly the "did my write go through?"
question that a timeout leaves open. It runs in the test's event loop.

    proxy = await TcpProxy("127.0.0.1", redis.port).start()
    proxy.reply_delay_s = 4.0      # every reply from now on arrives 4 s late (in order)
    proxy.late_for = b"EVALSHA"    # ... only the replies to requests that contain these bytes
    proxy.drop_requests = True     # what clients send from now on never reaches the server
    await proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards every connection to `host:port`; `reply_delay_s`, `drop_replies` and `drop_requests` act at once."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.reply_delay_s = 0.0
        self.late_for: bytes | None = None
        self.drop_replies = False
        self.drop_requests = False
        self.delayed = 0  # reply chunks held back
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, server_w))
        last_request = [b""]  # this connection's latest request chunk, to match `late_for` against
        self._spawn(self._pipe(client_r, server_w, last_request, replies=False))
        self._spawn(self._pipe(server_r, client_w, last_request, replies=True))

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, last_request: list[bytes], *, replies: bool
    ) -> None:
        # Replies go through a queue with a due time each, so a delay keeps their order.
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send_when_due(queue, writer))
        try:
            while data := await reader.read(65536):
                if not replies:
                    last_request[0] = data
                if replies and self.drop_replies or not replies and self.drop_requests:
                    continue
                late = replies and (self.late_for is None or self.late_for in last_request[0])
                delay = self.reply_delay_s if late else 0.0
                if delay:
                    self.delayed += 1
                queue.put_nowait((time.monotonic() + delay, data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await sender
            writer.close()
            self._writers.discard(writer)

    @staticmethod
    async def _send_when_due(queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter) -> None:
        while (entry := await queue.get()) is not None:
            due, data = entry
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if writer.is_closing():
                continue
            writer.write(data)
            with contextlib.suppress(OSError):
                await writer.drain()
