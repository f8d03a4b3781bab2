"""Run the real app in a subprocess on a free loopback port, and talk to it with real clients.

Time in tests is a scaled constant (`MS`), never a bare literal: set TEST_TIME_SCALE on slow machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from core.endpoints import NEWS_PATH

ROOT = Path(__file__).resolve().parent.parent
MS = 0.001 * float(os.environ.get("TEST_TIME_SCALE", "1"))

# Fast cadences so the tests see several periods in a few seconds.
FAST_ENV = {
    "PRICE_INTERVAL_S": "0.2",
    "STATUS_INTERVAL_S": "0.5",
    "MODELS_INTERVAL_S": "0.5",
    "SENTIMENT_INTERVAL_S": "0.5",
    "ENABLE_UI": "0",
    "ENABLE_INFERENCE": "0",
    "SELF_EVALUATE": "0",  # tests that measure models switch it on
    # `auto` measures every variant of each model at load (minutes on 2 busy cores); the runtime
    # choice is tested in-process (test_inference_autotune), so app tests load plain fp32.
    "INFERENCE_PRECISION": "fp32",
    "ENABLE_SOURCES": "0",
    "DATA_MODE": "demo",
    "ADMIN_TOKEN": "test-admin-token",
    "HF_HUB_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "LOG_LEVEL": "INFO",
}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def uvicorn_in_this_loop(app: Any) -> AsyncIterator[int]:
    """Serve the ASGI `app` with a real uvicorn (websockets-sansio) on a free loopback port, inside
    the test's own event loop; yield the port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio",
                                           lifespan="off", log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(10 * MS)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@dataclass
class AppProcess:
    """A running `python app.py` with its port, data dir and log."""

    port: int
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default=Path("/dev/null"))

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    # Importing gradio and torch alone took 80-190 s on a 2-core machine under heavy load: a start-up
    # limit below that fails tests for the machine's sake, not the app's.
    def start(self, timeout: float = 180.0) -> AppProcess:
        self.log_path = self.data_dir / f"server-{int(time.time() * 1000)}.log"
        env = {**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1",
               "DATA_DIR": str(self.data_dir), "LOG_FILE": str(self.data_dir / "server.log"),
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=str(ROOT), env=env,
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
            try:
                if httpx.get(f"{self.http}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.proc.kill()  # nobody else owns it: a test that failed to start must not leave a server behind
        self.proc.wait(5)
        raise TimeoutError(f"app did not answer /health within {timeout}s:\n{self.log()[-6000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def post_news(self, **fields: Any) -> httpx.Response:
        body = {"title": "t", "description": "d", "source": "Test Wire",
                "url": f"https://news.example/{time.time_ns()}", **fields}
        return httpx.post(f"{self.http}/api/news", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {self.env.get('ADMIN_TOKEN', '')}"})


@contextlib.contextmanager
def running_app(tmp_path: Path, **env: str) -> Iterator[AppProcess]:
    """Start the app with FAST_ENV plus `env`; stop it (SIGTERM) afterwards."""
    app = AppProcess(port=free_port(), data_dir=tmp_path, env={**FAST_ENV, **env})
    app.start()
    try:
        yield app
    finally:
        app.stop()


async def recv_json(ws: Any, timeout: float = 5000 * MS) -> dict[str, Any]:
    """Receive one JSON message within `timeout` seconds."""
    import asyncio

    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def recv_until(ws: Any, predicate: Any, timeout: float = 5000 * MS) -> dict[str, Any]:
    """Receive messages until one satisfies `predicate`; return it."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError("no matching message arrived")
        message = await recv_json(ws, left)
        if predicate(message):
            return message


async def resuming_news(app: AppProcess, stop: asyncio.Event, retry_s: float) -> AsyncIterator[dict[str, Any]]:
    """Yield /ws/news messages until `stop`, reconnecting with `?since=&epoch=` after every drop.

    The documented resume done by hand on a bare socket, as any client without the shipped one would:
    the position is the last news item's; a refused or failed connect is retried after `retry_s`.
    """
    import asyncio

    import websockets

    last: tuple[int, str] | None = None
    while not stop.is_set():
        query = f"?since={last[0]}&epoch={last[1]}" if last else ""
        try:
            async with websockets.connect(app.ws(f"{NEWS_PATH}{query}"), open_timeout=2) as ws:
                while not stop.is_set():
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    except TimeoutError:
                        continue
                    if message.get("type") == "news":
                        last = (int(message["seq"]), str(message["epoch"]))
                    yield message
        except (OSError, websockets.WebSocketException, TimeoutError):
            await asyncio.sleep(retry_s)
