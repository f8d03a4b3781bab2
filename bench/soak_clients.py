"""One load-generator process of `bench.soak`: a share of the clients, their churn, its own loop lag.

The coordinator (`bench/soak.py`) starts several of these so that no single client event loop is
the bottleneck, and talks to each over a `multiprocessing` pipe with one command at a time:
`connect`, `steady`, `held`, `stop`, `report` (with every seq posted), `close`. Each process
measures its own event-loop lag, so the JSON says whether a latency was the server's or the
client's. Not in CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.figures import percentile
from bench.lean_ws import HandshakeFailed, LeanSocket
from core.endpoints import MARKET_PATH, NEWS_PATH

__all__ = ["ClientSpec", "WorkerPlan", "run_worker"]

MARKET_SYMBOLS = ("BTC", "ETH", "SOL")
CONNECT_BATCH = 100  # connections opened at once per process, so the server's accept queue keeps up


@dataclass(frozen=True)
class ClientSpec:
    index: int
    kind: str  # "news" or "market"
    server: int  # index into WorkerPlan.servers


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    clients: tuple[ClientSpec, ...]
    servers: tuple[str, ...]  # ws://host:port of each server process (or one shared port)
    first_since: int  # last prefilled seq: news clients resume after it
    churn_per_s: float  # this process's share of the reconnects per second
    seed: int


@dataclass
class Client:
    spec: ClientSpec
    server: int
    first_since: int
    last_seq: int = 0
    epoch: str | None = None
    seqs: set[int] = field(default_factory=set)
    duplicates: int = 0
    connected_at: float = 0.0
    ws: LeanSocket | None = None
    task: asyncio.Task[None] | None = None
    subscribed: bool = False
    gap_errors: int = 0
    reconnecting: bool = False  # churn must not pick a client twice: the second would await the new session
    primed: set[str] = field(default_factory=set)  # symbols whose snapshot arrived since (re)connecting


def log(index: int, message: str) -> None:
    print(f"[soak loadgen {index} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Worker:
    """The clients of one load-generator process and the commands that drive them."""

    def __init__(self, plan: WorkerPlan, conn: Any) -> None:
        self.plan = plan
        self.conn = conn
        self.clients = [Client(spec, spec.server, plan.first_since) for spec in plan.clients]
        self.random = random.Random(plan.seed)
        self.news_latency_ms: list[float] = []
        self.price_latency_ms: list[float] = []
        self.loop_lag_ms: list[float] = []
        self.delivered = 0
        self.held = 0
        self.connect_failures = 0
        self.churned = 0
        self.closes_by_server: dict[int, int] = {}
        self.stop = asyncio.Event()
        self.background: list[asyncio.Task[None]] = []
        self.cpu_started = 0.0
        self.steady_started = 0.0

    # ------------------------------------------------------------ one client

    def url(self, client: Client) -> str:
        base = self.plan.servers[client.server]
        if client.spec.kind == "news":
            since = max(client.last_seq, client.first_since)
            epoch = f"&epoch={client.epoch}" if client.epoch else ""
            return f"{base}{NEWS_PATH}?since={since}{epoch}"
        symbols = f"?symbols={','.join(MARKET_SYMBOLS)}" if client.subscribed else ""
        return f"{base}{MARKET_PATH}{symbols}"

    async def connect(self, client: Client) -> None:
        ready = asyncio.get_running_loop().create_future()
        client.task = asyncio.create_task(self.session(client, ready))
        await ready

    async def session(self, client: Client, ready: asyncio.Future[None]) -> None:
        try:
            ws = await LeanSocket.connect(self.url(client), lambda raw: self.on_message(client, raw), timeout=60)
        except (OSError, HandshakeFailed, TimeoutError) as exc:
            self.connect_failures += 1
            log(self.plan.index, f"client {client.spec.index}: connect failed: {exc!r}")
            ready.set_result(None)
            return
        client.ws, client.connected_at, client.primed = ws, time.time(), set()
        self.held += 1
        ready.set_result(None)
        try:
            await ws.closed
        finally:
            self.held -= 1
            client.ws = None
            if ws.close_code not in (None, 1000) and ws.close_received:
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
                self.news_latency_ms.append(round((now - sent) * 1000, 2))
        elif kind == "price_update":
            if message["data"]["symbol"] not in client.primed:
                client.primed.add(message["data"]["symbol"])  # the snapshot sent on (re)subscribe: not timed
                return
            stamp = datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00")).timestamp()
            self.price_latency_ms.append(round((now - stamp) * 1000, 2))
        elif kind == "error" and message["error"]["code"] == "HISTORY_GAP":
            client.gap_errors += 1

    async def reconnect(self, client: Client) -> None:
        """Close `client`'s socket, wait for its reader, and connect again (news: to the next server)."""
        client.reconnecting = True
        try:
            if client.ws is not None:
                await client.ws.close()
            if client.task is not None:
                await client.task
            if client.spec.kind == "news" and len(self.plan.servers) > 1:
                client.server = (client.server + 1) % len(self.plan.servers)  # resume on another process
            await self.connect(client)
        finally:
            client.reconnecting = False

    # ------------------------------------------------------------ load

    async def churn(self) -> None:
        if self.plan.churn_per_s <= 0:
            return
        interval = 1 / self.plan.churn_per_s
        pending: set[asyncio.Task[None]] = set()
        while not self.stop.is_set():
            started = time.monotonic()
            client = self.random.choice(self.clients)
            if client.ws is not None and not client.reconnecting:
                task = asyncio.create_task(self.reconnect(client))
                pending.add(task)
                task.add_done_callback(pending.discard)
                self.churned += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
        await asyncio.gather(*pending)

    async def watch_loop_lag(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            await asyncio.sleep(0.1)
            self.loop_lag_ms.append((time.monotonic() - started - 0.1) * 1000)

    # ------------------------------------------------------------ commands

    async def serve(self) -> None:
        while True:
            command, payload = await asyncio.to_thread(self.conn.recv)
            reply = await getattr(self, f"do_{command}")(payload)
            self.conn.send(reply)
            if command == "close":
                return

    async def do_connect(self, _payload: Any) -> dict[str, Any]:
        for batch in range(0, len(self.clients), CONNECT_BATCH):
            await asyncio.gather(*(self.connect(c) for c in self.clients[batch : batch + CONNECT_BATCH]))
        return {"held": self.held, "connect_failures": self.connect_failures}

    async def do_steady(self, _payload: Any) -> dict[str, Any]:
        for client in self.clients:
            if client.spec.kind == "market":
                client.subscribed = True
                if client.ws is not None:
                    client.ws.send(json.dumps({"action": "subscribe", "symbols": list(MARKET_SYMBOLS)}))
        self.cpu_started, self.steady_started = _cpu_seconds(), time.monotonic()
        self.background = [asyncio.create_task(self.churn()), asyncio.create_task(self.watch_loop_lag())]
        return {"held": self.held}

    async def do_held(self, _payload: Any) -> dict[str, Any]:
        return {"held": self.held}

    async def do_stop(self, _payload: Any) -> dict[str, Any]:
        self.stop.set()
        cpu_s, wall_s = _cpu_seconds() - self.cpu_started, time.monotonic() - self.steady_started
        await asyncio.wait_for(asyncio.gather(*self.background), 120)  # a stuck reconnect fails loudly
        await asyncio.gather(*(self.connect(c) for c in self.clients if c.ws is None))
        return {"held": self.held, "cpu_percent": round(100 * cpu_s / max(wall_s, 1e-9), 1)}

    async def do_report(self, posted: list[int]) -> dict[str, Any]:
        lost = 0
        for client in self.clients:
            if client.spec.kind == "news":
                lost += sum(1 for seq in posted if seq > client.first_since and seq not in client.seqs)
        return {
            "pid": os.getpid(),
            "clients": len(self.clients),
            "lost": lost,
            "duplicates": sum(c.duplicates for c in self.clients),
            "history_gap_errors": sum(c.gap_errors for c in self.clients),
            "news_latency_ms": self.news_latency_ms,
            "price_latency_ms": self.price_latency_ms,
            "delivered": self.delivered,
            "reconnects": self.churned,
            "connect_failures": self.connect_failures,
            "closes_by_server": self.closes_by_server,
            "loop_lag_ms": {
                "p50": percentile(self.loop_lag_ms, 0.50),
                "p99": percentile(self.loop_lag_ms, 0.99),
                "max": percentile(self.loop_lag_ms, 1.0),
            },
        }

    async def do_close(self, _payload: Any) -> dict[str, Any]:
        for client in self.clients:
            if client.ws is not None:
                await client.ws.close()
        await asyncio.gather(*(c.task for c in self.clients if c.task is not None), return_exceptions=True)
        return {}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_worker(plan: WorkerPlan, conn: Any) -> None:
    """Process entry: serve the coordinator's commands until `close` (uvloop when installed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * len(plan.clients) + 256)), hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(Worker(plan, conn).serve())
    else:
        uvloop.run(Worker(plan, conn).serve())
