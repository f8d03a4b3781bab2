"""REST abuse: anonymous REST clients against an old store must not stall the streams. Not in CI.

    python -m bench.rest_abuse                                   # this tree, 500k stored points, 60 s
    python -m bench.rest_abuse --baseline-tree /tmp/hub-base     # the same scenario on another checkout first
    python -m bench.rest_abuse --duration 20 --points 100000     # a quick look

Before the app starts, its SQLite file is filled directly with `--points` BTC prices 10 s apart
(500k is about two months) and `--news-rows` stored news items, in the tables as the app itself
creates them. Then, for `--duration` seconds: `--query-clients` anonymous loops (each from its own
loopback address, 127.0.0.2 and up, so each is its own client) alternate
`GET /api/history/BTC?interval=1d&limit=5000` and `GET /api/news?q=<word>`; `--upload-clients`
loops send `--body-mb` MB unauthenticated `POST /api/news` bodies; one `/ws/market_data`
subscriber records the arrival of every BTC `price_update`, and `--news` items are posted with the
admin token at even intervals and timed from POST-send to arrival on `/ws/news`. Items not
arrived `--drain` seconds after the last post are `lost`. The abusive loops run in a child process
so their own CPU does not delay the measuring client's reads; a loop that gets a 429 waits 50 ms
(a client that ignores `Retry-After` but is not a tight spin on a shared 2-core machine).

With a tree that keeps rollups, abuse starts once the app has folded the prefilled points into
them (an upgrade's one-time backfill, reported as `upgrade_backfill_s`): the store is then as that
app keeps it. Goals: `btc_worst_gap_s` < 2 and `news_p99_ms` < 250. One JSON object goes to stdout, with
`baseline`, `candidate` and their ratios when `--baseline-tree` is given; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.figures import percentile
from bench.runs import QUIET_APP_ENV, stop_process
from core.endpoints import MARKET_PATH, NEWS_PATH
from testbed.harness import ROOT, free_port

__all__ = ["main"]

ADMIN_TOKEN = "abuse-admin-token"
SERVER_ENV = {**QUIET_APP_ENV, "ADMIN_TOKEN": ADMIN_TOKEN, "GRADIO_ANALYTICS_ENABLED": "False"}
WORDS = ("bitcoin", "etf", "halving", "whale", "regulation", "ethereum", "miners", "stablecoin")
GAP_GOAL_S = 2.0
NEWS_P99_GOAL_MS = 250.0

# Runs inside the tree under test (its own `core.store` tables), before the app starts.
PREFILL = r"""
import random, sqlite3, sys
from datetime import UTC, datetime, timedelta
from sqlalchemy import create_engine
try:
    from core.store.news import news
    from core.store.prices import prices
except ImportError:  # a tree from before the store was split by area: one module
    from core.store import news, prices

path, points, news_rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
engine = create_engine(f"sqlite:///{path}")
prices.create(engine)
news.create(engine)
engine.dispose()
words = sys.argv[4].split(",")
now = datetime.now(UTC).replace(tzinfo=None)  # SQLAlchemy stores UTC without the offset in SQLite
fmt = "%Y-%m-%d %H:%M:%S.%f"
rng = random.Random(9)
price, rows = 60000.0, []
for i in range(points):
    price *= 1 + rng.gauss(0, 0.0005)
    ts = (now - timedelta(seconds=10 * (points - i))).strftime(fmt)
    rows.append(("BTC", ts, round(price, 2), "bench-prefill"))
conn = sqlite3.connect(path)
conn.executemany("INSERT INTO prices (symbol, ts, price, source) VALUES (?, ?, ?, ?)", rows)
items = []
for i in range(news_rows):
    a, b = words[i % len(words)], words[(i * 7 + 3) % len(words)]
    at = (now - timedelta(seconds=60 * (news_rows - i))).strftime(fmt)
    items.append((f"https://prefill.example/{i}", f"{a.title()} desk: {b} update {i}",
                  f"Stored item {i} about {a} and {b}, written before the app started.", "Prefill Wire", at, at))
conn.executemany(
    "INSERT INTO news (url, title, description, source, published_at, ingested_at) VALUES (?, ?, ?, ?, ?, ?)", items
)
conn.commit()
conn.close()
"""


def log(message: str) -> None:
    print(f"[rest_abuse {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tree_commit(tree: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


# ------------------------------------------------------------ the abusive clients (child process)


async def _query_loop(base: str, index: int, stop_at: float, counts: collections.Counter[str]) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + index}")
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        n = index
        while time.monotonic() < stop_at:
            if n % 2 == 0:
                url, kind = f"{base}/api/history/BTC?interval=1d&limit=5000", "history"
            else:
                url, kind = f"{base}/api/news?q={WORDS[n % len(WORDS)]}&limit=50", "search"
            n += 1
            try:
                reply = await client.get(url)
                counts[f"{kind} {reply.status_code}"] += 1
                if reply.status_code == 429:
                    await asyncio.sleep(0.05)
            except httpx.HTTPError as exc:
                counts[f"{kind} {type(exc).__name__}"] += 1


async def _upload_loop(base: str, index: int, stop_at: float, body: bytes, counts: collections.Counter[str]) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{100 + index}")
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        while time.monotonic() < stop_at:
            try:
                reply = await client.post(f"{base}/api/news", content=body,
                                          headers={"Content-Type": "application/json"})
                counts[f"upload {reply.status_code}"] += 1
                if reply.status_code == 429:
                    await asyncio.sleep(0.05)
            except httpx.HTTPError as exc:
                counts[f"upload {type(exc).__name__}"] += 1


async def _abuse(base: str, duration: float, queries: int, uploads: int, body_mb: float) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    stop_at = time.monotonic() + duration
    filler = b"x" * int(body_mb * 1024 * 1024)
    body = b'{"title": "t", "url": "https://big.example/", "source": "s", "description": "' + filler + b'"}'
    await asyncio.gather(
        *(_query_loop(base, i, stop_at, counts) for i in range(queries)),
        *(_upload_loop(base, i, stop_at, body, counts) for i in range(uploads)),
    )
    return dict(sorted(counts.items()))


# ------------------------------------------------------------ one measured run


class Measurement:
    """The subscriber's BTC arrivals and each posted item's latency to /ws/news."""

    def __init__(self) -> None:
        self.btc_arrivals: list[float] = []
        self.posted: dict[str, float] = {}  # title -> monotonic send time
        self.latency_ms: dict[str, float] = {}
        self.post_status: collections.Counter[str] = collections.Counter()

    async def watch_market(self, url: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        subscribe = {"action": "subscribe", "symbols": ["BTC"]}
        async for message in _messages(url, ready, stop, first=subscribe):
            if message.get("type") == "price_update" and message["data"]["symbol"] == "BTC":
                self.btc_arrivals.append(time.monotonic())

    async def watch_news(self, url: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        async for message in _messages(url, ready, stop):
            title = message.get("data", {}).get("title") if message.get("type") == "news" else None
            if title in self.posted and title not in self.latency_ms:
                self.latency_ms[title] = (time.monotonic() - self.posted[title]) * 1000

    async def post_news(self, base: str, count: int, duration: float) -> None:
        interval = duration / count
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(timeout=duration + 60, headers=headers) as http:
            posts = []
            for i in range(count):
                await asyncio.sleep(interval / 2 if i == 0 else interval)
                title = f"abuse-run item {i} {time.time_ns()}"
                self.posted[title] = time.monotonic()
                posts.append(asyncio.create_task(self._post(http, base, title, i)))
            await asyncio.gather(*posts)

    async def _post(self, http: httpx.AsyncClient, base: str, title: str, i: int) -> None:
        try:
            reply = await http.post(f"{base}/api/news", json={
                "title": title, "description": "timed", "source": "Abuse Wire", "url": f"https://timed.example/{i}",
            })
            self.post_status[str(reply.status_code)] += 1
        except httpx.HTTPError as exc:
            self.post_status[type(exc).__name__] += 1

    def worst_gap_s(self, start: float, end: float) -> float:
        stamps = [start, *(t for t in self.btc_arrivals if start <= t <= end), end]
        return round(max(b - a for a, b in zip(stamps, stamps[1:], strict=False)), 2)


async def _messages(
    url: str, ready: asyncio.Event, stop: asyncio.Event, first: dict[str, Any] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Yield the JSON messages of one socket on `url` until `stop`; set `ready` once `first` is sent."""
    async with websockets.connect(url, open_timeout=30, max_size=None, ping_interval=None) as ws:
        if first is not None:
            await ws.send(json.dumps(first))
        ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            yield json.loads(raw)


async def measure_during(
    port: int, args: argparse.Namespace, abuser: list[str]
) -> tuple[Measurement, float, float, bytes]:
    """Watch BTC and /ws/news while the child process `abuser` (its arguments after `python -m`) runs
    and `args.news` items are posted over `args.duration`; return the measurement, its start and end,
    and the child's stdout."""
    base = f"http://127.0.0.1:{port}"
    m = Measurement()
    stop = asyncio.Event()
    market_ready, news_ready = asyncio.Event(), asyncio.Event()
    watchers = [
        asyncio.create_task(m.watch_market(f"ws://127.0.0.1:{port}{MARKET_PATH}", market_ready, stop)),
        asyncio.create_task(m.watch_news(f"ws://127.0.0.1:{port}{NEWS_PATH}", news_ready, stop)),
    ]
    await asyncio.wait_for(asyncio.gather(market_ready.wait(), news_ready.wait()), 60)
    await asyncio.sleep(2)  # the subscription's snapshot and first ticks are not part of the measurement
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", *abuser, cwd=str(ROOT),
                                                 stdout=asyncio.subprocess.PIPE)
    start = time.monotonic()
    await m.post_news(base, args.news, args.duration)
    out, _ = await child.communicate()
    end = time.monotonic()
    deadline = end + args.drain
    while len(m.latency_ms) < len(m.posted) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*watchers, return_exceptions=True)
    return m, start, end, out


def stream_figures(m: Measurement, start: float, end: float) -> dict[str, Any]:
    """The BTC subscriber's and the news items' figures between `start` and `end`, with the goals."""
    latencies = list(m.latency_ms.values())
    gap = m.worst_gap_s(start, end)
    p99 = percentile(latencies, 0.99, digits=1)
    lost = len(m.posted) - len(latencies)
    return {
        "measured_s": round(end - start, 1),
        "btc_updates": sum(1 for t in m.btc_arrivals if start <= t <= end),
        "btc_worst_gap_s": gap,
        "news_posted": len(m.posted),
        "news_post_status": dict(m.post_status),
        "news_received": len(latencies),
        "news_lost": lost,
        "news_p50_ms": percentile(latencies, 0.5, digits=1),
        "news_p99_ms": p99,
        "news_max_ms": round(max(latencies), 1) if latencies else None,
        "goals_met": {
            "btc_worst_gap_lt_2s": gap < GAP_GOAL_S,
            "news_p99_lt_250ms": p99 is not None and p99 < NEWS_P99_GOAL_MS and lost == 0,
        },
    }


async def measure(port: int, args: argparse.Namespace) -> dict[str, Any]:
    m, start, end, out = await measure_during(port, args, [
        "bench.rest_abuse", "--abuser", f"http://127.0.0.1:{port}", "--duration", str(args.duration),
        "--query-clients", str(args.query_clients), "--upload-clients", str(args.upload_clients),
        "--body-mb", str(args.body_mb),
    ])
    figures = stream_figures(m, start, end)
    goals = figures.pop("goals_met")
    return {**figures, "abuse_requests": json.loads(out.decode() or "{}"), "goals_met": goals}


@contextlib.contextmanager
def serving(tree: Path, env: dict[str, str], data_dir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run `tree`'s app.py on a free port with `env` over this environment; yield the port and process."""
    port = free_port()
    env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1", "DATA_DIR": str(data_dir),
           "LOG_FILE": str(data_dir / "server.log"), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(tree)}
    with (data_dir / "stdout.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(tree / "app.py")], cwd=str(tree), env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        yield port, proc
    finally:
        stop_process(proc)


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Prefill a store, start the app of `tree` on it, measure, stop it."""
    with tempfile.TemporaryDirectory(prefix="rest-abuse-") as tmp:
        data_dir = Path(tmp)
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", PREFILL, str(data_dir / "hub.sqlite3"), str(args.points), str(args.news_rows),
             ",".join(WORDS)],
            cwd=str(tree), env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
        )
        prefill_s = time.monotonic() - started
        log(f"{tree}: prefilled {args.points} prices and {args.news_rows} news in {prefill_s:.1f} s")
        extra = dict(kv.split("=", 1) for kv in args.server_env)
        with serving(tree, {**SERVER_ENV, **extra}, data_dir) as (port, proc):
            _wait_healthy(port, proc, data_dir)
            backfill_s = _wait_for_backfill(data_dir / "hub.sqlite3")
            log(f"{tree}: app up on port {port} (rollup backfill {backfill_s} s); abusing for {args.duration:.0f} s")
            result = {"upgrade_backfill_s": backfill_s, **asyncio.run(measure(port, args))}
        result = {"tree": str(tree), "commit": tree_commit(tree), "prefill_s": round(prefill_s, 1), **result}
        log(f"{tree}: worst BTC gap {result['btc_worst_gap_s']} s, news p99 {result['news_p99_ms']} ms, "
            f"lost {result['news_lost']}")
        return result


def _wait_for_backfill(path: Path, timeout: float = 600.0) -> float | None:
    """Wait until the app folded the prefilled points into its rollups; None when it keeps none.

    The store is then as the app itself keeps it, and the abuse measures steady state rather
    than the one-time upgrade (whose length is reported as `upgrade_backfill_s`).
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'price_rollups_backfill'").fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        if state["done"] >= state["upto"]:
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    raise TimeoutError(f"rollups not backfilled within {timeout} s")


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], data_dir: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}: {(data_dir / 'stdout.log').read_text()[-4000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"app did not answer /health within {timeout} s")


def _ratio(candidate: Any, baseline: Any) -> float | None:
    if not isinstance(candidate, int | float) or not isinstance(baseline, int | float) or not candidate:
        return None
    return round(baseline / candidate, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_compared_arguments(parser, duration=60.0, example="REST_RATE_PER_S=5")
    parser.add_argument("--points", type=int, default=500_000, help="stored BTC prices, 10 s apart")
    parser.add_argument("--news-rows", type=int, default=20_000, help="stored news items")
    parser.add_argument("--query-clients", type=int, default=8)
    parser.add_argument("--upload-clients", type=int, default=2)
    parser.add_argument("--body-mb", type=float, default=20.0)
    parser.add_argument("--abuser", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.abuser:
        counts = asyncio.run(_abuse(args.abuser, args.duration, args.query_clients, args.upload_clients, args.body_mb))
        print(json.dumps(counts))
        return
    result: dict[str, Any] = {"scenario": {k: getattr(args, k) for k in (
        "points", "news_rows", "duration", "query_clients", "upload_clients", "body_mb", "news", "server_env")}}
    print_compared(result, args, run_tree)


def add_compared_arguments(parser: argparse.ArgumentParser, *, duration: float, example: str) -> None:
    """Add what every run of a tree against a baseline tree takes: the trees, the load, the timed news."""
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose app.py is measured")
    parser.add_argument("--baseline-tree", type=Path, help="measure this checkout first, as the named baseline")
    parser.add_argument("--duration", type=float, default=duration, help="seconds of load")
    parser.add_argument("--news", type=int, default=20, help="news items posted (with the admin token) meanwhile")
    parser.add_argument("--drain", type=float, default=20.0, help="seconds to wait for late news")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help=f"an extra setting for the app (repeatable), e.g. {example}")


def print_compared(result: dict[str, Any], args: argparse.Namespace,
                   run_tree: Callable[[Path, argparse.Namespace], dict[str, Any]]) -> None:
    """Measure the baseline tree (when given), then the candidate; print both and their ratios as JSON."""
    if args.baseline_tree is not None:
        result["baseline"] = run_tree(args.baseline_tree.resolve(), args)
    result["candidate"] = run_tree(args.tree.resolve(), args)
    if args.baseline_tree is not None:
        base, cand = result["baseline"], result["candidate"]
        result["improvement"] = {
            "btc_worst_gap_x": _ratio(cand["btc_worst_gap_s"], base["btc_worst_gap_s"]),
            "news_p99_x": _ratio(cand["news_p99_ms"], base["news_p99_ms"]),
        }
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
