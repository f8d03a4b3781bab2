"""Fan-out benchmark: our hub against the common FastAPI broadcaster, with and without one stalled client.

    python -m bench.ws_fanout                        # 100, 500 and 1000 clients, 10 s windows
    python -m bench.ws_fanout --quick                # 100 clients, 4 s windows
    python -m bench.ws_fanout --clients 500 --duration 20 --servers ours --scenarios stalled

Each run has three processes: the server (ours: `app.py` through testbed/harness.py's AppProcess; the
baseline: this module with `--role baseline`), a client process (`--role clients`: N market and N news
sockets, plain `websockets` connections in one asyncio loop) and this orchestrator, which publishes news
through POST /api/news with the send time in the title, and in the `stalled` scenario opens one raw TCP
client that completes the handshake on both endpoints, subscribes to every symbol and never reads.

Measured per run: news publish-to-receive latency (p50/p99 over every client x item; an item a client
never got counts as lost, and a percentile that falls among the lost is null), price updates delivered
against expected (each subscribed symbol once per tick per client, counted by the server's tick time so
window edges do not blur the ratio), server CPU, and the client loop's own lag (when it is high, the
latencies include the client process being starved, not only the server). The result is one JSON
object on stdout; progress goes to stderr.

The baseline is the pattern of FastAPI's WebSocket docs: a list of sockets and a loop that awaits
`send_json` on each in turn, for the price tick and inside the news POST handler. Same uvicorn, same
WebSocket implementation (websockets-sansio), same cadences and message shapes as ours.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Module level: FastAPI resolves the routes' string annotations (`WebSocket`) in this module's globals.
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from bench.figures import percentile
from bench.runs import stop_process
from core.endpoints import MARKET_PATH, NEWS_PATH

__all__ = ["build_baseline_app", "main"]

ROOT = Path(__file__).resolve().parent.parent
# The app's default SYMBOLS (core/config.py).
DEFAULT_SYMBOLS = ("BTC,ETH,USDT,XRP,BNB,SOL,USDC,DOGE,TRX,ADA,"
                   "LINK,AVAX,XLM,SUI,BCH,HBAR,LTC,DOT,TON,SHIB").split(",")
ADMIN_TOKEN = "bench-admin-token"
OURS_ENV = {
    "DATA_MODE": "demo", "ENABLE_UI": "0", "ENABLE_INFERENCE": "0", "ENABLE_SOURCES": "0",
    "ADMIN_TOKEN": ADMIN_TOKEN, "PRICE_INTERVAL_S": "1", "MAX_CONNECTIONS": "100000",
    "MAX_CONNECTIONS_PER_IP": "100000", "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
}
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
STALLED_RCVBUF = 4096  # the stalled client's receive window: small, so the server's buffers fill quickly


def tracked_symbols(count: int) -> list[str]:
    """Return `count` symbols: the app's 20 defaults, then X021, X022... (the simulator walks any symbol)."""
    return (DEFAULT_SYMBOLS + [f"X{i:03d}" for i in range(len(DEFAULT_SYMBOLS) + 1, count + 1)])[:count]


def stamp(moment: float | None = None) -> str:
    """Return the wire's UTC timestamp (ISO 8601, milliseconds, `Z`)."""
    return datetime.fromtimestamp(time.time() if moment is None else moment, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def raise_fd_limit() -> int:
    """Raise the open-files soft limit to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid: int) -> float:
    """Return the user+system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the naive baseline server


def build_baseline_app(symbols: list[str], price_interval_s: float) -> Any:
    """Return the common FastAPI broadcaster: one loop awaiting `send_json` on each client in turn."""
    market: dict[WebSocket, set[str]] = {}
    news: list[WebSocket] = []
    rng = random.Random(7)
    prices = {symbol: 100.0 * (i + 1) for i, symbol in enumerate(symbols)}
    news_seq = itertools.count(1)

    async def broadcast_prices() -> None:
        while True:
            started = time.monotonic()
            now = stamp()
            for symbol in symbols:
                prices[symbol] *= 1 + rng.gauss(0, 0.001)
                message = {"type": "price_update", "timestamp": now, "source": "simulator",
                           "data": {"symbol": symbol, "price": prices[symbol], "change_24h": 0.1,
                                    "change_7d": -0.2, "volume_24h": 1e9, "market_cap": 1e10,
                                    "timestamp": now, "age_s": 0.0}}
                for websocket, wanted in list(market.items()):
                    if symbol in wanted:
                        try:
                            await websocket.send_json(message)
                        except Exception:
                            market.pop(websocket, None)
            await asyncio.sleep(max(0.0, price_interval_s - (time.monotonic() - started)))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        task = asyncio.create_task(broadcast_prices())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket(MARKET_PATH)
    async def market_data(websocket: WebSocket) -> None:
        await websocket.accept()
        wanted: set[str] = set()
        market[websocket] = wanted
        try:
            while True:
                request = await websocket.receive_json()
                if request.get("action") == "subscribe":
                    wanted.update(s.upper() for s in request.get("symbols", []))
                    await websocket.send_json({"type": "ack", "timestamp": stamp(), "action": "subscribe",
                                               "data": {"symbols": sorted(wanted)}})
        except WebSocketDisconnect:
            pass
        finally:
            market.pop(websocket, None)

    @app.websocket(NEWS_PATH)
    async def news_feed(websocket: WebSocket) -> None:
        await websocket.accept()
        news.append(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            if websocket in news:
                news.remove(websocket)

    @app.post("/api/news", status_code=201)
    async def publish_news(item: dict[str, Any]) -> dict[str, Any]:
        seq = next(news_seq)
        message = {"type": "news", "timestamp": stamp(), "seq": seq,
                   "data": {"title": item["title"], "description": item.get("description", ""),
                            "url": item["url"], "source": item["source"], "published_at": stamp(),
                            "sentiment": None, "sentiment_score": None, "image_url": None}}
        for websocket in list(news):
            try:
                await websocket.send_json(message)
            except Exception:
                if websocket in news:
                    news.remove(websocket)
        return {"seq": seq, "duplicate": False}

    return app


def serve_baseline(port: int, price_interval_s: float, symbols: list[str]) -> None:
    """Run the baseline under the same uvicorn WebSocket implementation as app.py."""
    import uvicorn

    config = uvicorn.Config(build_baseline_app(symbols, price_interval_s), host="127.0.0.1", port=port,
                            ws="websockets-sansio", log_level="warning", ws_ping_interval=20.0,
                            ws_ping_timeout=20.0)
    asyncio.run(uvicorn.Server(config).serve())


# ---------------------------------------------------------------- the client process


class _Tally:
    """What the client process counts while the window is open."""

    def __init__(self) -> None:
        self.price_by_tick: dict[tuple[str, str], int] = {}
        self.news: dict[str, list[float]] = {}
        self.closed = 0
        self.lag: list[float] = []


async def _read_market(ws: Any, tally: _Tally, loads: Any) -> None:
    counts = tally.price_by_tick
    with contextlib.suppress(Exception):
        async for raw in ws:
            message = loads(raw)
            if message.get("type") == "price_update":
                data = message["data"]
                key = (data["symbol"], data["timestamp"])
                counts[key] = counts.get(key, 0) + 1
    tally.closed += 1


async def _read_news(ws: Any, tally: _Tally, loads: Any) -> None:
    with contextlib.suppress(Exception):
        async for raw in ws:
            received = time.time()
            message = loads(raw)
            if message.get("type") == "news":
                _, nonce, sent = message["data"]["title"].split()
                tally.news.setdefault(nonce, []).append(received - float(sent))
    tally.closed += 1


async def _watch_lag(tally: _Tally, period: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(period)
        tally.lag.append(loop.time() - before - period)


async def run_clients(base: str, clients: int, per_client: int, symbols: list[str], compress: bool) -> None:
    """Open the sockets, say READY, count between START and STOP (stdin lines), print the tally."""
    from websockets.asyncio.client import connect

    try:
        import orjson

        loads: Any = orjson.loads
    except ImportError:
        loads = json.loads
    raise_fd_limit()
    tally = _Tally()
    gate = asyncio.Semaphore(64)
    # permessage-deflate is what browsers and websockets negotiate by default, so it is on unless told.
    options: dict[str, Any] = {"ping_interval": None, "open_timeout": 60, "max_queue": 64,
                               "compression": "deflate" if compress else None}
    subscribers: dict[str, int] = {}

    async def open_pair(i: int) -> tuple[Any, Any]:
        wanted = [symbols[(i * per_client + k) % len(symbols)] for k in range(per_client)]
        for symbol in wanted:
            subscribers[symbol] = subscribers.get(symbol, 0) + 1
        async with gate:
            market = await connect(base + MARKET_PATH, **options)
            await market.send(json.dumps({"action": "subscribe", "symbols": wanted}))
            news = await connect(base + NEWS_PATH, **options)
        return market, news

    started = time.monotonic()
    pairs = await asyncio.gather(*(open_pair(i) for i in range(clients)))
    connect_s = time.monotonic() - started
    tasks = [asyncio.create_task(_read_market(m, tally, loads)) for m, _ in pairs]
    tasks += [asyncio.create_task(_read_news(n, tally, loads)) for _, n in pairs]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY", flush=True)
    assert (await reader.readline()).strip() == b"START"
    tally.price_by_tick.clear()
    tally.news.clear()
    lag_task = asyncio.create_task(_watch_lag(tally))
    window_start = time.time()
    assert (await reader.readline()).strip().startswith(b"STOP")
    window_end = float((await reader.readline()).strip() or time.time())
    lag_task.cancel()
    lag = sorted(tally.lag)
    result = {
        "connect_s": round(connect_s, 2),
        "window": [window_start, window_end],
        "subscribers": subscribers,
        "price_by_tick": [[s, ts, n] for (s, ts), n in tally.price_by_tick.items()],
        "news": tally.news,
        "sockets_closed": tally.closed,
        "client_loop_lag_p99_ms": percentile(lag, 0.99, scale=1000, digits=1),
    }
    print(json.dumps(result), flush=True)
    for task in tasks:
        task.cancel()
    for market, news in pairs:
        market.transport.abort()
        news.transport.abort()


# ---------------------------------------------------------------- the stalled client


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81, 0x80 | len(payload)]) if len(payload) < 126 else (
        bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big"))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_stalled_socket(port: int, path: str, first_message: dict[str, Any] | None) -> socket.socket:
    """Complete a WebSocket handshake on a raw socket, send one message, and never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"stalled client: server closed during the handshake: {response[:200]!r}")
        response += chunk
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    if not response.startswith(b"HTTP/1.1 101") or accept.encode() not in response:
        raise ConnectionError(f"stalled client: expected 101 with the accept key, got {response[:200]!r}")
    if first_message is not None:
        sock.sendall(_masked_text_frame(json.dumps(first_message)))
    return sock


# ---------------------------------------------------------------- the orchestrator


def _start_server(kind: str, price_interval_s: float, symbols: list[str]) -> tuple[Any, int]:
    from testbed.harness import AppProcess, free_port

    port = free_port()
    if kind == "ours":
        data_dir = Path(tempfile.mkdtemp(prefix="bench-ours-"))
        env = {**OURS_ENV, "PRICE_INTERVAL_S": str(price_interval_s), "SYMBOLS": ",".join(symbols)}
        app = AppProcess(port=port, data_dir=data_dir, env=env)
        app.start()
        assert app.proc is not None
        return app, app.proc.pid
    log = Path(tempfile.mkdtemp(prefix="bench-baseline-")) / "server.log"
    command = [sys.executable, "-m", "bench.ws_fanout", "--role", "baseline", "--port", str(port),
               "--price-interval", str(price_interval_s), "--tracked-symbols", str(len(symbols))]
    proc = subprocess.Popen(command, cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"baseline exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, proc.pid
        time.sleep(0.1)
    raise TimeoutError("baseline did not answer /health within 60 s")


def _stop_server(server: Any) -> None:
    if hasattr(server, "stop"):
        server.stop()
        return
    stop_process(server, timeout=10)


async def _publish_news(http: Any, port: int, nonce: str, outcome: dict[str, int]) -> None:
    sent = time.time()
    body = {"title": f"bench {nonce} {sent:.6f}", "description": "fan-out benchmark item",
            "url": f"https://bench.example/{nonce}", "source": "Bench Wire"}
    try:
        response = await http.post(f"http://127.0.0.1:{port}/api/news", json=body,
                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        outcome["ok" if response.status_code == 201 else "failed"] += 1
    except Exception:
        outcome["failed"] += 1


def _tick_slots(ticks: list[float], start: float, end: float, interval: float) -> int:
    """Return how many ticks a server on cadence makes in [start, end), phased on the ticks seen.

    Counting slots rather than ticks seen keeps a stalled broadcaster (few or no ticks at all) from
    lowering its own expectation, and aligning them to the server's phase keeps a 10 s window from
    being off by a whole tick (10%) depending on where it started.
    """
    if not ticks:
        return int((end - start) / interval)
    phase = ticks[0]
    before = int((phase - start) / interval)
    after = math.ceil((end - phase) / interval)
    return before + after


def _summarise(raw: dict[str, Any], nonces: list[str], clients: int, price_interval_s: float,
               cpu_s: float, window_s: float) -> dict[str, Any]:
    start, end = raw["window"]
    received = 0
    tick_times: set[float] = set()
    parsed: dict[str, float] = {}
    for _symbol, ts, count in raw["price_by_tick"]:
        moment = parsed.get(ts)
        if moment is None:
            moment = parsed[ts] = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        if start <= moment < end:
            tick_times.add(moment)
            received += count
    slots = _tick_slots(sorted(tick_times), start, end, price_interval_s)
    expected = slots * sum(raw["subscribers"].values())
    samples: list[float] = []
    for nonce in nonces:
        got = raw["news"].get(nonce, [])
        samples.extend(got[:clients])
        samples.extend([math.inf] * max(0, clients - len(got)))
    samples.sort()
    lost = sum(1 for s in samples if s == math.inf)

    return {
        "news_p50_ms": percentile(samples, 0.50, scale=1000, digits=1),
        "news_p99_ms": percentile(samples, 0.99, scale=1000, digits=1),
        "news_max_ms": percentile([s for s in samples if s != math.inf], 1.0, scale=1000, digits=1),
        "news_items": len(nonces),
        "news_deliveries": len(samples) - lost,
        "news_lost": lost,
        "price_ticks_seen": len(tick_times),
        "price_tick_slots": slots,
        "price_expected": expected,
        "price_received": received,
        "price_delivery": round(received / expected, 4) if expected else None,
        "price_updates_per_s": round(received / window_s, 1),
        "price_expected_per_s": round(expected / window_s, 1),
        "server_cpu_pct": round(100 * cpu_s / window_s, 1),
        "client_loop_lag_p99_ms": raw["client_loop_lag_p99_ms"],
        "client_sockets_closed": raw["sockets_closed"],
        "connect_s": raw["connect_s"],
    }


async def run_once(kind: str, clients: int, stalled: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Start one server, load it, measure one window, stop everything; return the figures."""
    import httpx

    symbols = tracked_symbols(args.tracked_symbols)
    server, pid = await asyncio.to_thread(_start_server, kind, args.price_interval, symbols)
    port = _port_of(server)
    stalled_socks: list[socket.socket] = []
    proc = None
    try:
        if stalled:
            everything = {"action": "subscribe", "symbols": symbols}
            stalled_socks = [open_stalled_socket(port, MARKET_PATH, everything),
                             open_stalled_socket(port, NEWS_PATH, None)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.ws_fanout", "--role", "clients", "--port", str(port),
            "--clients", str(clients), "--symbols-per-client", str(args.symbols_per_client),
            "--tracked-symbols", str(args.tracked_symbols),
            *(["--no-compression"] if args.no_compression else []), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=256 * 1024 * 1024)
        assert proc.stdin is not None and proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 180)
        if line.strip() != b"READY":
            raise RuntimeError(f"client process: expected READY, got {line[:200]!r}")
        if stalled:
            await asyncio.sleep(args.stall_warmup)  # let the stalled sockets' buffers fill first
        loadavg = os.getloadavg()
        cpu_before = cpu_seconds(pid)
        proc.stdin.write(b"START\n")
        await proc.stdin.drain()
        window_start = time.time()
        nonces: list[str] = []
        outcome = {"ok": 0, "failed": 0}
        posts: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=args.duration + 10) as http:
            for i in range(int(args.duration * args.news_rate)):
                await asyncio.sleep(max(0.0, window_start + i / args.news_rate - time.time()))
                nonce = f"{kind[0]}{clients}{'s' if stalled else 'n'}{i}x{random.randrange(10**6)}"
                nonces.append(nonce)
                task = asyncio.create_task(_publish_news(http, port, nonce, outcome))
                posts.add(task)
                task.add_done_callback(posts.discard)
            await asyncio.sleep(max(0.0, window_start + args.duration - time.time()))
            window_end = time.time()
            await asyncio.sleep(args.grace)  # late deliveries still count, with their latency
            for task in list(posts):
                task.cancel()
            await asyncio.gather(*posts, return_exceptions=True)
        cpu_s = cpu_seconds(pid) - cpu_before
        proc.stdin.write(f"STOP\n{window_end}\n".encode())
        await proc.stdin.drain()
        raw = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
        figures = _summarise(raw, nonces, clients, args.price_interval, cpu_s, window_end - window_start)
        figures["news_posts_failed"] = outcome["failed"] + (len(nonces) - outcome["ok"] - outcome["failed"])
        figures["loadavg_1m_before"] = round(loadavg[0], 2)
        return figures
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        for sock in stalled_socks:
            sock.close()
        await asyncio.to_thread(_stop_server, server)


def _port_of(server: Any) -> int:
    if hasattr(server, "port"):
        return int(server.port)
    return int(server.args[server.args.index("--port") + 1])


def _ratio(ours: float | None, baseline: float | None) -> float | None:
    if ours is None or baseline is None or baseline == 0:
        return None
    return round(ours / baseline, 3)


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    """Run every (clients, scenario, server) combination and return the report."""
    raise_fd_limit()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
                    "note": "server, clients and orchestrator share this machine with other test runs"},
        "config": {"clients": args.clients, "duration_s": args.duration, "news_per_s": args.news_rate,
                   "symbols_per_client": args.symbols_per_client, "price_interval_s": args.price_interval,
                   "tracked_symbols": args.tracked_symbols, "client_compression": not args.no_compression,
                   "stall_warmup_s": args.stall_warmup, "servers": args.servers, "scenarios": args.scenarios},
        "runs": {},
    }
    for clients in args.clients:
        for scenario in args.scenarios:
            entry: dict[str, Any] = {}
            for kind in args.servers:
                print(f"bench: {kind} with {clients} clients, {scenario}", file=sys.stderr, flush=True)
                entry[kind] = await run_once(kind, clients, scenario == "stalled", args)
                print(f"bench:   {json.dumps(entry[kind])}", file=sys.stderr, flush=True)
            if "ours" in entry and "baseline" in entry:
                ours, base = entry["ours"], entry["baseline"]
                entry["ours_over_baseline"] = {
                    "news_p50": _ratio(ours["news_p50_ms"], base["news_p50_ms"]),
                    "news_p99": _ratio(ours["news_p99_ms"], base["news_p99_ms"]),
                    "price_delivery": _ratio(ours["price_delivery"], base["price_delivery"]),
                }
            report["runs"].setdefault(str(clients), {})[scenario] = entry
    report["goal_500_clients"] = _goal(report["runs"].get("500", {}))
    return report


def _goal(runs: dict[str, Any]) -> dict[str, Any] | None:
    checks: dict[str, Any] = {}
    for scenario in ("normal", "stalled"):
        ours = runs.get(scenario, {}).get("ours")
        if ours is not None:
            p99 = ours["news_p99_ms"]
            checks[scenario] = {"news_p99_under_100ms": p99 is not None and p99 < 100,
                                "price_delivery_at_least_95pct": (ours["price_delivery"] or 0) >= 0.95}
    if not checks:
        return None
    checks["met"] = all(all(c.values()) for c in checks.values())
    return checks


def _csv_ints(raw: str) -> list[int]:
    return [int(part) for part in raw.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the role it names."""
    parser = argparse.ArgumentParser(prog="python -m bench.ws_fanout", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=_csv_ints, default=[100, 500, 1000], help="e.g. 100,500,1000")
    parser.add_argument("--duration", type=float, default=10.0, help="measured window per run, seconds")
    parser.add_argument("--news-rate", type=float, default=2.0, help="news items published per second")
    parser.add_argument("--symbols-per-client", type=int, default=3)
    parser.add_argument("--tracked-symbols", type=int, default=100,
                        help="symbols both servers tick every interval (the stalled client takes all)")
    parser.add_argument("--price-interval", type=float, default=1.0)
    parser.add_argument("--grace", type=float, default=3.0, help="seconds after the window for late news")
    parser.add_argument("--stall-warmup", type=float, default=12.0,
                        help="seconds the stalled client gets to fill the server's buffers before measuring")
    parser.add_argument("--servers", type=lambda s: s.split(","), default=["ours", "baseline"])
    parser.add_argument("--scenarios", type=lambda s: s.split(","), default=["normal", "stalled"])
    parser.add_argument("--no-compression", action="store_true",
                        help="clients do not offer permessage-deflate (browsers do by default)")
    parser.add_argument("--quick", action="store_true", help="100 clients, 4 s windows")
    parser.add_argument("--role", choices=["orchestrate", "clients", "baseline"], default="orchestrate",
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "baseline":
        serve_baseline(args.port, args.price_interval, tracked_symbols(args.tracked_symbols))
        return 0
    if args.role == "clients":
        symbols = tracked_symbols(args.tracked_symbols)
        base = f"ws://127.0.0.1:{args.port}"
        compress = not args.no_compression
        asyncio.run(run_clients(base, args.clients[0], args.symbols_per_client, symbols, compress))
        return 0
    if args.quick:
        args.clients, args.duration = [100], 4.0
    print(json.dumps(asyncio.run(orchestrate(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
