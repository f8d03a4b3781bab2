"""Soak: a thousand WebSocket clients held for minutes with churn, news and prices flowing. Not in CI.

    python -m bench.soak                                # 1000 clients, 50 connects/s, 180 s
    python -m bench.soak --duration 60 --clients 300    # a quick look
    python -m bench.soak --processes 2                  # two app processes on one Redis (redis-server)

Phases: (0) `--prefill` news items fill the server's history ring, so its memory is at its bound
before anything is measured; (1) every client connects and stays idle (news clients with no new
news, market clients before subscribing) and the server's resident memory per idle connection is
measured; (2) market
clients subscribe, news is posted at `--news-rate` per second with its send time in the
description, and `--churn` clients per second disconnect and reconnect (news clients with
`?since=<last seq>&epoch=`, to the next process when there are several; market clients with
`?symbols=`); (3) churn stops, every client is connected again, and each news client's seqs are
compared with every seq posted since it first connected: anything missing is `lost`.

News latency is POST-send to receive, for items published while the client was connected (resume
replays are counted as delivered, not timed). Price latency is the message's own timestamp to
receive (millisecond precision). Growth is the slope of the server's RSS over the steady phase
after `--warmup` seconds. The client runs in this process, so `client_loop_lag_ms` says how much
of a latency is the client being starved. One JSON object goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness import AppProcess, free_port  # noqa: E402

__all__ = ["main"]

ADMIN_TOKEN = "soak-admin-token"
SERVER_ENV = {
    "DATA_MODE": "demo",
    "ENABLE_UI": "0",
    "ENABLE_INFERENCE": "0",
    "ENABLE_SOURCES": "0",
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "PRICE_INTERVAL_S": "1",
    "MAX_CONNECTIONS": "100000",
    "MAX_CONNECTIONS_PER_IP": "100000",
    "LOG_LEVEL": "WARNING",
    "HF_HUB_OFFLINE": "1",
}
MARKET_SYMBOLS = ("BTC", "ETH", "SOL")


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_kb(pid: int) -> int:
    """Return a process's resident set size in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """Return a process's user + system CPU time in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


@dataclass
class Client:
    index: int
    kind: str  # "news" or "market"
    process: int
    first_since: int | None = None
    last_seq: int = 0
    epoch: str | None = None
    seqs: set[int] = field(default_factory=set)
    duplicates: int = 0
    connected_at: float = 0.0
    ws: Any = None
    task: asyncio.Task[None] | None = None
    subscribed: bool = False
    connects: int = 0
    gap_errors: int = 0
    reconnecting: bool = False  # churn must not pick a client twice: the second would await the new session
    primed: set[str] = field(default_factory=set)  # symbols whose snapshot arrived since (re)connecting


@dataclass
class Soak:
    apps: list[AppProcess]
    args: argparse.Namespace
    clients: list[Client] = field(default_factory=list)
    posted: dict[int, float] = field(default_factory=dict)  # seq -> send time
    news_latency_ms: list[float] = field(default_factory=list)
    price_latency_ms: list[float] = field(default_factory=list)
    delivered: int = 0
    held: int = 0
    connect_failures: int = 0
    churned: int = 0
    closes_by_server: dict[int, int] = field(default_factory=dict)
    loop_lag_ms: list[float] = field(default_factory=list)

    # ------------------------------------------------------------ one client

    def url(self, client: Client) -> str:
        app = self.apps[client.process]
        if client.kind == "news":
            since = max(client.last_seq, client.first_since or 0)
            epoch = f"&epoch={client.epoch}" if client.epoch else ""
            return app.ws(f"/ws/news?since={since}{epoch}")
        symbols = f"?symbols={','.join(MARKET_SYMBOLS)}" if client.subscribed else ""
        return app.ws(f"/ws/market_data{symbols}")

    async def connect(self, client: Client) -> None:
        """Open one connection for `client` and start reading it."""
        ready = asyncio.get_running_loop().create_future()
        client.task = asyncio.create_task(self.session(client, ready))
        await ready

    async def session(self, client: Client, ready: asyncio.Future[None]) -> None:
        try:
            ws = await websockets.connect(self.url(client), open_timeout=30, max_size=None, max_queue=None)
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            self.connect_failures += 1
            log(f"client {client.index}: connect failed: {exc!r}")
            ready.set_result(None)
            return
        client.ws, client.connected_at, client.primed = ws, time.time(), set()
        client.connects += 1
        self.held += 1
        ready.set_result(None)
        try:
            async for raw in ws:
                self.on_message(client, raw)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.held -= 1
            client.ws = None
            if ws.close_code not in (None, 1000) and ws.protocol.close_rcvd is not None:
                self.closes_by_server[ws.close_code] = self.closes_by_server.get(ws.close_code, 0) + 1

    def on_message(self, client: Client, raw: str | bytes) -> None:
        now = time.time()
        self.delivered += 1
        message = json.loads(raw)
        kind = message["type"]
        if kind == "news":
            seq = message["seq"]
            if seq in client.seqs:
                client.duplicates += 1
            client.seqs.add(seq)
            client.last_seq, client.epoch = max(client.last_seq, seq), message["epoch"]
            sent = float(message["data"]["description"])
            if sent >= client.connected_at:
                self.news_latency_ms.append((now - sent) * 1000)
        elif kind == "price_update":
            if message["data"]["symbol"] not in client.primed:
                client.primed.add(message["data"]["symbol"])  # the snapshot sent on (re)subscribe: not timed
                return
            stamp = datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00")).timestamp()
            self.price_latency_ms.append((now - stamp) * 1000)
        elif kind == "error" and message["error"]["code"] == "HISTORY_GAP":
            client.gap_errors += 1

    async def reconnect(self, client: Client) -> None:
        """Close `client`'s socket, wait for its reader, and connect again (to the next process)."""
        client.reconnecting = True
        try:
            if client.ws is not None:
                await client.ws.close()
            if client.task is not None:
                await client.task
            if client.kind == "news" and len(self.apps) > 1:
                client.process = (client.process + 1) % len(self.apps)  # resume on another process
            await self.connect(client)
        finally:
            client.reconnecting = False

    # ------------------------------------------------------------ load

    async def prefill(self, count: int) -> int:
        """Post `count` items before any client connects, so the history ring is full (memory is flat)."""
        if count <= 0:
            return 0
        log(f"prefilling the news history with {count} items")
        last = 0
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
            for batch in range(0, count, 20):
                replies = await asyncio.gather(
                    *(
                        http.post(
                            f"{self.apps[i % len(self.apps)].http}/api/news",
                            json={
                                "title": f"prefill {i}",
                                "description": "0",
                                "source": "Soak Wire",
                                "url": f"https://soak.example/prefill/{i}",
                            },
                        )
                        for i in range(batch, min(count, batch + 20))
                    )
                )
                last = max([last, *(r.json()["seq"] for r in replies if r.status_code == 201)])
        return last

    async def post_news(self, stop: asyncio.Event) -> None:
        interval = 1 / self.args.news_rate
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
            n = 0
            while not stop.is_set():
                started = time.monotonic()
                app = self.apps[n % len(self.apps)]
                sent = time.time()
                body = {
                    "title": f"soak item {n}",
                    "description": f"{sent:.6f}",
                    "source": "Soak Wire",
                    "url": f"https://soak.example/{n}",
                }
                try:
                    reply = await http.post(f"{app.http}/api/news", json=body)
                    if reply.status_code == 201:
                        self.posted[reply.json()["seq"]] = sent
                    else:
                        log(f"news post answered {reply.status_code}: {reply.text[:200]}")
                except httpx.HTTPError as exc:
                    log(f"news post failed: {exc!r}")
                n += 1
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def churn(self, stop: asyncio.Event) -> None:
        interval = 1 / self.args.churn
        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            started = time.monotonic()
            client = random.choice(self.clients)
            if client.ws is not None and not client.reconnecting:
                task = asyncio.create_task(self.reconnect(client))
                pending.add(task)
                task.add_done_callback(pending.discard)
                self.churned += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
        await asyncio.gather(*pending)

    async def watch_loop_lag(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            await asyncio.sleep(0.1)
            self.loop_lag_ms.append((time.monotonic() - started - 0.1) * 1000)

    def server_rss_kb(self) -> int:
        return sum(rss_kb(app.proc.pid) for app in self.apps if app.proc is not None)

    def server_connections(self) -> int:
        total = 0
        for app in self.apps:
            text = httpx.get(f"{app.http}/metrics", timeout=10).text
            total += int(
                sum(float(v) for v in re.findall(r"^hub_ws_connections\{[^}]*\} (\S+)$", text, re.M))
            )
        return total

    def server_counter(self, name: str) -> float:
        total = 0.0
        for app in self.apps:
            text = httpx.get(f"{app.http}/metrics", timeout=10).text
            total += sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))
        return total

    # ------------------------------------------------------------ the run

    async def run(self) -> dict[str, Any]:
        args = self.args
        n_news = int(args.clients * args.news_share)
        prefilled = await self.prefill(args.prefill)
        self.clients = [
            Client(i, "news" if i < n_news else "market", i % len(self.apps), first_since=prefilled)
            for i in range(args.clients)
        ]
        await asyncio.sleep(2)
        rss_before = self.server_rss_kb()
        log(f"connecting {args.clients} idle clients ({n_news} news, {args.clients - n_news} market)")
        started = time.monotonic()
        for batch in range(0, len(self.clients), 100):
            await asyncio.gather(*(self.connect(c) for c in self.clients[batch : batch + 100]))
        connect_s = time.monotonic() - started
        await asyncio.sleep(3)
        rss_idle = self.server_rss_kb()
        held_idle = self.server_connections()
        per_idle_kb = (rss_idle - rss_before) / max(1, held_idle)
        log(f"{held_idle} idle connections held in {connect_s:.1f} s; {per_idle_kb:.1f} KB each")

        for client in self.clients:
            if client.kind == "market":
                client.subscribed = True
                if client.ws is not None:
                    await client.ws.send(json.dumps({"action": "subscribe", "symbols": list(MARKET_SYMBOLS)}))
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(self.post_news(stop)),
            asyncio.create_task(self.churn(stop)),
            asyncio.create_task(self.watch_loop_lag(stop)),
        ]
        log(f"steady phase: {args.duration} s, churn {args.churn}/s, news {args.news_rate}/s")
        samples: list[tuple[float, int, int]] = []  # (t, server rss KB, client-side held)
        phase_started = time.monotonic()
        cpu_started = sum(cpu_seconds(app.proc.pid) for app in self.apps if app.proc is not None)
        while (elapsed := time.monotonic() - phase_started) < args.duration:
            await asyncio.sleep(2)
            samples.append((elapsed, self.server_rss_kb(), self.held))
            if len(samples) % 15 == 0:
                log(
                    f"t={elapsed:.0f}s held={self.held} rss={samples[-1][1] / 1024:.1f} MB "
                    f"delivered={self.delivered} posted={len(self.posted)}"
                )
        stop.set()
        server_cpu_s = (
            sum(cpu_seconds(app.proc.pid) for app in self.apps if app.proc is not None) - cpu_started
        )
        await asyncio.wait_for(asyncio.gather(*workers), 120)  # a stuck reconnect fails loudly
        log("churn stopped; reconnecting everyone and letting the streams settle")
        await asyncio.gather(*(self.connect(c) for c in self.clients if c.ws is None))
        await asyncio.sleep(3)
        held_end = self.server_connections()

        lost = 0
        for client in self.clients:
            if client.kind == "news":
                expected = {seq for seq in self.posted if seq > (client.first_since or 0)}
                lost += len(expected - client.seqs)
        steady = [(t, rss) for t, rss, _ in samples if t >= args.warmup]
        slope = _slope(steady)
        result = {
            "clients": args.clients,
            "processes": len(self.apps),
            "duration_s": args.duration,
            "churn_connects_per_s": args.churn,
            "connections_held": {
                "idle_phase": held_idle,
                "steady_min": min(h for _, _, h in samples),
                "steady_mean": round(statistics.fmean(h for _, _, h in samples), 1),
                "end": held_end,
            },
            "connect_failures": self.connect_failures,
            "reconnects": self.churned,
            "messages_delivered": self.delivered,
            "news": {
                "posted": len(self.posted),
                "clients": n_news,
                "lost": lost,
                "duplicates": sum(c.duplicates for c in self.clients),
                "history_gap_errors": sum(c.gap_errors for c in self.clients),
                "latency_ms": {
                    "p50": percentile(self.news_latency_ms, 0.50),
                    "p99": percentile(self.news_latency_ms, 0.99),
                    "max": percentile(self.news_latency_ms, 1.0),
                    "samples": len(self.news_latency_ms),
                },
            },
            "prices": {
                "latency_ms": {
                    "p50": percentile(self.price_latency_ms, 0.50),
                    "p99": percentile(self.price_latency_ms, 0.99),
                    "samples": len(self.price_latency_ms),
                }
            },
            "server_memory": {
                "rss_before_clients_mb": round(rss_before / 1024, 1),
                "rss_idle_clients_mb": round(rss_idle / 1024, 1),
                "per_idle_connection_kb": round(per_idle_kb, 1),
                "rss_steady_start_mb": round(steady[0][1] / 1024, 1) if steady else None,
                "rss_end_mb": round(samples[-1][1] / 1024, 1),
                "growth_kb_per_min": round(slope * 60, 1) if slope is not None else None,
            },
            "server_cpu_percent": round(100 * server_cpu_s / args.duration, 1),
            "machine_load_avg_1m_end": round(os.getloadavg()[0], 2),
            "server_counters": {
                "slow_consumer_closes": self.server_counter("hub_ws_slow_consumer_closes_total"),
                "refused_connections": self.server_counter("hub_ws_refused_connections_total"),
                "dropped_coalesced": self.server_counter("hub_ws_messages_dropped_total"),
            },
            "closes_by_server": self.closes_by_server,
            "client_loop_lag_ms": {
                "p99": percentile(self.loop_lag_ms, 0.99),
                "max": percentile(self.loop_lag_ms, 1.0),
            },
            "goals": {
                "held_1000": held_end >= 1000 and min(h for _, _, h in samples) >= 0.9 * args.clients,
                "news_p99_under_100ms": (percentile(self.news_latency_ms, 0.99) or 1e9) < 100,
                "news_lost_zero": lost == 0,
                "under_50kb_per_idle_connection": per_idle_kb < 50,
            },
        }
        for client in self.clients:
            if client.ws is not None:
                await client.ws.close()
        await asyncio.gather(*(c.task for c in self.clients if c.task is not None), return_exceptions=True)
        return result


def _slope(points: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS (KB) over time (s)."""
    if len(points) < 3:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    denominator = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / denominator if denominator else None


@contextlib.contextmanager
def _servers(count: int, base: Path):  # type: ignore[no-untyped-def]
    redis = None
    apps: list[AppProcess] = []
    try:
        env = dict(SERVER_ENV)
        if count > 1:
            from tests.services import RedisServer

            redis = RedisServer(base / "redis").start()
            env["REDIS_URL"] = redis.url
        for i in range(count):
            data_dir = base / f"app{i}"
            data_dir.mkdir(parents=True)
            apps.append(AppProcess(port=free_port(), data_dir=data_dir, env=env).start())
        yield apps
    finally:
        for app in apps:
            app.stop()
        if redis is not None:
            redis.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--churn", type=float, default=50.0, help="reconnects per second")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of the steady phase")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before growth is measured")
    parser.add_argument("--news-rate", type=float, default=5.0, help="news items posted per second")
    parser.add_argument("--news-share", type=float, default=0.6, help="fraction of clients on /ws/news")
    parser.add_argument(
        "--prefill",
        type=int,
        default=1000,
        help="news posted before clients connect (fills the history ring: HISTORY_SIZE)",
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="app processes (more than 1 needs redis-server)"
    )
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 1024)), hard))
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, _servers(args.processes, Path(tmp)) as apps:
        result = asyncio.run(Soak(apps, args).run())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
