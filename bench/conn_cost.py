"""What one open socket costs the server: memory and asyncio tasks per idle connection, and fan-out latency.

    python -m bench.conn_cost                     # 1000 idle /ws/news sockets, 20 items 500 ms apart
    python -m bench.conn_cost --clients 200 --items 40 --gap-ms 100

Two processes: the server (`--role server`: app.py's `build_app` on `compose()` under uvicorn with the same WebSocket
implementation, plus two bench-only routes) and this orchestrator, which holds the client sockets.

Measured, in this order:
1. RSS and `asyncio.all_tasks()` of the server before and after N idle `/ws/news` sockets connected
   (per connection: the delta divided by N). The sockets are then closed.
2. The same N sockets again with `tracemalloc` tracing the server: bytes allocated per connection
   (tracing is off during step 1 because its own bookkeeping would inflate RSS).
3. Fan-out: with the N sockets open, the server publishes `--items` news envelopes on its bus at
   `--gap-ms` intervals, each carrying its publish time; every client records receive minus publish time
   (p50/p99/max over every client x item, and the count delivered against expected), the server's CPU
   time per delivered frame over the same window (a figure the machine's other load barely moves), and
   the client loop's own lag (when it is high, the latencies are the client's, not the server's).

The result is one JSON object on stdout; progress goes to stderr. Compare runs of two builds on the
same machine, one after the other, or better within one shell invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.figures import percentile
from bench.runs import QUIET_APP_ENV

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
SERVER_ENV = {**QUIET_APP_ENV, "PRICE_INTERVAL_S": "60", "MAX_CONNECTIONS": "100000",
              "MAX_CONNECTIONS_PER_IP": "100000", "IDLE_TIMEOUT_S": "3600"}


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def serve(port: int) -> None:
    """Run the app with the bench's probe and publish routes (the `--role server` process)."""
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    from app import build_app
    from compose import compose
    from core.config import Settings

    class BenchNews(BaseModel):
        type: str = "news"
        seq: int = 0
        epoch: str = ""
        data: dict[str, Any]

    settings = Settings.from_env(os.environ)
    parts = compose(settings)
    app: FastAPI = build_app(parts)

    async def probe() -> dict[str, Any]:
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
        return {"rss_kb": _rss_kb(), "tasks": len(asyncio.all_tasks()), "traced_bytes": traced,
                "sessions": len(parts.sockets.sessions), "cpu_s": time.process_time()}

    async def trace(on: bool) -> dict[str, bool]:
        if on:
            tracemalloc.start()
        else:
            tracemalloc.stop()
        return {"tracing": tracemalloc.is_tracing()}

    async def publish(items: int, gap_ms: float) -> dict[str, int]:
        bus = parts.bus
        for i in range(items):
            bus.publish("news", BenchNews(data={"title": f"bench {i}", "sent": time.time()}),
                        match_text=f"bench {i}", source="bench")
            await asyncio.sleep(gap_ms / 1000)
        return {"published": items}

    app.add_api_route("/_bench/probe", probe, methods=["GET"])
    app.add_api_route("/_bench/trace", trace, methods=["POST"])
    app.add_api_route("/_bench/publish", publish, methods=["POST"])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio",
                            ws_ping_interval=settings.ws_ping_interval_s, ws_ping_timeout=settings.ws_ping_interval_s,
                            log_config=None, lifespan="on")
    asyncio.run(uvicorn.Server(config).serve())


async def _open(url: str, count: int, batch: int = 50) -> list[Any]:
    import websockets

    sockets: list[Any] = []
    for start in range(0, count, batch):
        sockets += await asyncio.gather(*(websockets.connect(url, open_timeout=30, ping_interval=None)
                                          for _ in range(min(batch, count - start))))
    return sockets


async def _close(sockets: list[Any]) -> None:
    for start in range(0, len(sockets), 100):
        await asyncio.gather(*(ws.close() for ws in sockets[start:start + 100]), return_exceptions=True)


async def _wait_sessions(http: Any, wanted: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        probe: dict[str, Any] = (await http.get("/_bench/probe")).json()
        if probe["sessions"] == wanted or time.monotonic() > deadline:
            return probe
        await asyncio.sleep(0.2)


async def _collect(ws: Any, items: int, latencies: list[float], stop: asyncio.Event) -> None:
    got = 0
    while got < items and not stop.is_set():
        try:
            raw = await asyncio.wait_for(ws.recv(), 0.5)
        except TimeoutError:
            continue
        message = json.loads(raw)
        if message.get("type") == "news":
            latencies.append((time.time() - message["data"]["sent"]) * 1000)
            got += 1


async def _watch_lag(lag: list[float], stop: asyncio.Event, every_s: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(every_s)
        lag.append((loop.time() - before - every_s) * 1000)


async def measure(port: int, clients: int, items: int, gap_ms: float) -> dict[str, Any]:
    """Run the three measurements against the server on `port`."""
    import httpx

    url = f"ws://127.0.0.1:{port}/ws/news"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        before = await _wait_sessions(http, 0)
        sockets = await _open(url, clients)
        await asyncio.sleep(1.0)
        idle = await _wait_sessions(http, clients)
        await _close(sockets)
        await _wait_sessions(http, 0)
        print(f"idle: {idle}", file=sys.stderr)

        await http.post("/_bench/trace", params={"on": True})
        traced_before = (await http.get("/_bench/probe")).json()
        sockets = await _open(url, clients)
        await asyncio.sleep(1.0)
        traced = await _wait_sessions(http, clients)
        await http.post("/_bench/trace", params={"on": False})
        print(f"traced: {traced}", file=sys.stderr)

        latencies: list[float] = []
        stop = asyncio.Event()
        readers = [asyncio.create_task(_collect(ws, items, latencies, stop)) for ws in sockets]
        lag: list[float] = []
        ticker = asyncio.create_task(_watch_lag(lag, stop))
        cpu_before = (await http.get("/_bench/probe")).json()["cpu_s"]
        await http.post("/_bench/publish", params={"items": items, "gap_ms": gap_ms})
        await asyncio.wait(readers, timeout=30)
        cpu_after = (await http.get("/_bench/probe")).json()["cpu_s"]
        stop.set()
        await asyncio.gather(ticker, *readers, return_exceptions=True)
        await _close(sockets)

    per = max(1, clients)
    return {
        "clients": clients,
        "idle_rss_kb_per_conn": round((idle["rss_kb"] - before["rss_kb"]) / per, 2),
        "idle_tasks_per_conn": round((idle["tasks"] - before["tasks"]) / per, 3),
        "idle_traced_kb_per_conn": round((traced["traced_bytes"] - traced_before["traced_bytes"]) / per / 1024, 2),
        "server_tasks_before": before["tasks"],
        "fanout": {
            "items": items,
            "gap_ms": gap_ms,
            "delivered": len(latencies),
            "expected": items * clients,
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": round(max(latencies), 2) if latencies else None,
            "server_cpu_us_per_frame": round((cpu_after - cpu_before) * 1e6 / max(1, len(latencies)), 2),
            "client_lag_p99_ms": percentile(lag, 0.99),
        },
    }


def main() -> None:
    """Start a server process, measure it, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("orchestrate", "server"), default="orchestrate")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=500.0)
    args = parser.parse_args()
    if args.role == "server":
        serve(args.port)
        return
    from testbed.harness import free_port

    port = args.port or free_port()
    with tempfile.TemporaryDirectory(prefix="conn-cost-") as data:
        env = {**os.environ, **SERVER_ENV, "DATA_DIR": data, "LOG_FILE": str(Path(data) / "server.log"),
               "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "bench.conn_cost", "--role", "server", "--port", str(port)],
                                cwd=str(ROOT), env=env)
        try:
            _wait_health(port, proc)
            result = asyncio.run(measure(port, args.clients, args.items, args.gap_ms))
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
            if proc.poll() is None:
                proc.kill()
    result["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=str(ROOT), capture_output=True,
                                   text=True, check=False).stdout.strip()
    print(json.dumps(result, indent=2))


def _wait_health(port: int, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"server did not answer /health within {timeout}s")


if __name__ == "__main__":
    main()
