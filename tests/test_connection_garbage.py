"""A closed WebSocket connection is freed when it ends, not left for the garbage collector.

Under churn, every closed socket that sits in a reference cycle waits for a collection, and the
collector frees them all at once while the event loop stands still. The server runs in this
process so that `gc.garbage` shows what a closed connection leaves behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import websockets

from app import _server, build_app
from compose import compose
from core.config import Settings
from testbed.harness import free_port


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path) -> AsyncIterator[int]:
    port = free_port()
    settings = Settings(host="127.0.0.1", port=port, data_dir=tmp_path, data_mode="demo", enable_ui=False,
                        enable_inference=False, enable_sources=False, log_file=None, gc_freeze=False,
                        gc_pace_ms=0)
    parts = compose(settings)
    server = _server(build_app(parts), parts.sockets, settings)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        await serving


async def _visit(port: int, path: str) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}") as socket:
        if path == "/ws/market_data":
            await socket.send(json.dumps({"action": "subscribe", "symbols": ["BTC", "ETH"]}))
        await asyncio.sleep(1.0)  # served a while: a visit under 0.7 s hid a cycle


def _live_types() -> Counter[str]:
    return Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())


@contextlib.contextmanager
def _cyclic_garbage() -> Iterator[set[str]]:
    """Collect nothing meanwhile, then yield the type names of the objects a collection frees.

    The app's own collector is off here (GC_PACE_MS=0, `gc.disable()`): a cycle freed before the
    test looked would pass unseen. Counted by what disappears rather than with DEBUG_SAVEALL: a
    cycle through a suspended generator is broken by closing the generator and never saved there.
    """
    found: set[str] = set()
    gc.collect()
    gc.disable()
    try:
        yield found
        before = _live_types()
        gc.collect()
        before.subtract(_live_types())
        found.update(name for name, gone in before.items() if gone > 0)
    finally:
        gc.enable()


async def test_closed_connections_leave_no_session_or_server_protocol_in_a_reference_cycle(tmp_path: Path) -> None:
    async with _serving(tmp_path) as port:
        await asyncio.gather(*(_visit(port, "/ws/news") for _ in range(3)))  # warm: first-use caches
        await asyncio.sleep(0.3)
        with _cyclic_garbage() as left:
            await asyncio.gather(*(_visit(port, path) for path in ("/ws/news", "/ws/market_data") for _ in range(5)))
            await asyncio.sleep(0.5)  # the server's side of each close runs after the client's
    # The test's own clients (websockets' client side) leave the same parser cycle; not the server's concern.
    server_side = {name for name in left if name.startswith(("ws.", "uvicorn.", "starlette.", "websockets.server"))}
    assert not server_side
