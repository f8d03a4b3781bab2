"""Soak: a thousand WebSocket clients held for minutes with churn, news and prices flowing. Not in CI.

    python -m bench.soak                                # 1000 clients, 50 connects/s, 180 s
    python -m bench.soak --duration 60 --clients 300    # a quick look
    python -m bench.soak --processes 2                  # two app processes on one Redis (redis-server)
    python -m bench.soak --processes 2 --shared-port    # ... both listening on one port (REUSE_PORT=1)
    python -m bench.soak --clients 5000 --idle-only     # RSS per idle connection, nothing else
    python -m bench.soak --server-env GC_FREEZE=1       # any setting of the app processes
    python -m bench.soak --inference --probe-rate 2     # the models on (MODELS unset: the budget picks)
    python -m bench.soak --hub-model ElKulako/cryptobert --probe-rate 2   # ... with a full-size stand-in

`--inference` runs the app with its models and MODELS unset, so the measured budget picks them;
`--hub-model ID` (repeatable, implies it) also builds a full-size stand-in of that catalog model
(random weights, its real architecture and dimensions, `testbed/hub_standin.py`) and serves it from a
local stand-in Hub. The load phase starts once no model is loading. `--probe-rate` asks the
embedded model for one short text per 1/rate s through `POST /api/sentiment` during the steady
phase (what a visitor feels while the hub models score news); `probe_ms` reports its latency.

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
after `--warmup` seconds; `last_window_*` is the same over the last two minutes (or what there is).
The clients run in `--procs` forked load-generator processes (`bench/soak_clients.py`); each
reports its own event-loop lag and CPU under `loadgen`, so a latency is known to be the server's
only while those lags are small. `server_gc` is the server's collector pauses per generation during
the steady phase (from `/metrics`). One JSON object goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.figures import percentile
from bench.runs import QUIET_APP_ENV
from bench.soak_clients import ClientSpec, WorkerPlan, run_worker
from testbed.harness import AppProcess, free_port
from testbed.services import sockets_of, start_on_shared_port

EMBEDDED_MODEL_ID = "embedded/minilm-finhead"
PROBE_TEXT = "Bitcoin holds above its 50-day average as ETF inflows stay positive"

__all__ = ["main"]

ADMIN_TOKEN = "soak-admin-token"
SERVER_ENV = {**QUIET_APP_ENV, "ADMIN_TOKEN": ADMIN_TOKEN, "MAX_CONNECTIONS": "100000",
              "MAX_CONNECTIONS_PER_IP": "100000"}
FLAT_FRACTION = 0.01  # memory is "flat" when it grew less than this share over the last window


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


# Per-generation figures read from /metrics beside the pause histogram's buckets, by their key.
GC_SCALARS = {
    "sum": "hub_gc_pause_seconds_sum",
    "max": "hub_gc_pause_max_seconds",
    "cpu": "hub_gc_cpu_seconds_total",
    "collected": "hub_gc_collected_objects_total",
}


def _distribution(values: list[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)  # once: the runs hold hundreds of thousands of samples (sorting it again is linear)
    return {
        "p50": percentile(ordered, 0.50),
        "p99": percentile(ordered, 0.99),
        "max": percentile(ordered, 1.0),
        "samples": len(ordered),
    }


def procs_default() -> int:
    return max(2, min(8, os.cpu_count() or 2))


@dataclass
class Soak:
    apps: list[AppProcess]
    args: argparse.Namespace
    shared_port: bool = False
    workers: list[Any] = field(default_factory=list)  # (process, pipe) per load-generator process
    posted: dict[int, float] = field(default_factory=dict)  # seq -> send time
    ack_ms: list[float] = field(default_factory=list)  # POST -> 201, per posted item
    probe_ms: list[float] = field(default_factory=list)  # one text asked of the embedded model
    probe_errors: int = 0

    # ------------------------------------------------------------ load generators

    def start_loadgen(self, n_news: int, first_since: int) -> None:
        """Fork `--procs` load-generator processes, each with every `procs`-th client."""
        procs = max(1, min(self.args.procs, self.args.clients))
        servers = tuple(dict.fromkeys(app.ws("") for app in self.apps))
        specs = [
            ClientSpec(i, "news" if i < n_news else "market", i % len(servers)) for i in range(self.args.clients)
        ]
        context = multiprocessing.get_context("fork")
        for index in range(procs):
            plan = WorkerPlan(
                index=index, clients=tuple(specs[index::procs]), servers=servers, first_since=first_since,
                churn_per_s=self.args.churn / procs, seed=index,
            )
            ours, theirs = context.Pipe()
            process = context.Process(target=run_worker, args=(plan, theirs), daemon=True)
            process.start()
            self.workers.append((process, ours))

    async def command(self, name: str, payload: Any = None) -> list[dict[str, Any]]:
        """Send one command to every load generator and wait for all of their answers."""

        async def ask(pipe: Any) -> dict[str, Any]:
            pipe.send((name, payload))
            return await asyncio.to_thread(pipe.recv)

        return await asyncio.gather(*(ask(pipe) for _, pipe in self.workers))

    def stop_loadgen(self) -> None:
        for process, _ in self.workers:
            process.join(30)
            if process.is_alive():
                process.kill()

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
                        self.ack_ms.append(round((time.time() - sent) * 1000, 2))
                    else:
                        log(f"news post answered {reply.status_code}: {reply.text[:200]}")
                except httpx.HTTPError as exc:
                    log(f"news post failed: {exc!r}")
                n += 1
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def probe_sentiment(self, stop: asyncio.Event) -> None:
        """Ask the embedded model for one short text every 1/--probe-rate s; keep each latency."""
        interval = 1 / self.args.probe_rate
        body = {"texts": [PROBE_TEXT], "model": EMBEDDED_MODEL_ID}
        # With the admin token: the operator's requests are not rate limited (REST_RATE_PER_S).
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    reply = await http.post(f"{self.apps[0].http}/api/sentiment", json=body)
                    if reply.status_code == 200 and reply.json()["results"][0]["model"] == EMBEDDED_MODEL_ID:
                        self.probe_ms.append(round((time.monotonic() - started) * 1000, 2))
                    else:
                        self.probe_errors += 1
                except httpx.HTTPError:
                    self.probe_errors += 1
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def models_summary(self) -> list[dict[str, Any]] | None:
        """Each model's state, reason, cost per news item and calls, from `/api/models` (None: inference off)."""
        reply = httpx.get(f"{self.apps[0].http}/api/models", timeout=30)
        if reply.status_code != 200:
            return None
        return [
            {
                "id": m["id"],
                "status": m["status"],
                "reason": m.get("reason"),
                "cost": {k: v for k, v in (m.get("budget") or {}).items() if k != "rules"} or None,
                "calls": m.get("calls"),
                "avg_ms": m.get("avg_response_time"),
                "news_deadline_misses": m.get("news_deadline_misses"),
            }
            for m in reply.json()["models"]
        ]

    # ------------------------------------------------------------ the server's side

    def server_rss_kb(self) -> int:
        return sum(rss_kb(app.proc.pid) for app in self.apps if app.proc is not None)

    def metrics_texts(self) -> list[str] | None:
        """Each process's /metrics, or None when they share a port (a scrape reaches any one of them)."""
        if self.shared_port:
            return None
        return [httpx.get(f"{app.http}/metrics", timeout=10).text for app in self.apps]

    def server_connections(self) -> int:
        if self.shared_port:  # counted from /proc: established sockets of each server process
            return sum(sockets_of(app.proc.pid, app.port) for app in self.apps if app.proc is not None)
        texts = self.metrics_texts() or []
        return sum(
            int(sum(float(v) for v in re.findall(r"^hub_ws_connections\{[^}]*\} (\S+)$", text, re.M)))
            for text in texts
        )

    def server_counter(self, name: str) -> float | None:
        texts = self.metrics_texts()
        if texts is None:
            return None
        return sum(
            sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)) for text in texts
        )

    def gc_histograms(self) -> list[dict[str, dict[str, float]]] | None:
        """Per process: generation -> {le: cumulative count} and the `GC_SCALARS` by their keys."""
        texts = self.metrics_texts()
        if texts is None:
            return None
        out = []
        for text in texts:
            per: dict[str, dict[str, float]] = {}
            for gen, le, value in re.findall(
                r'^hub_gc_pause_seconds_bucket\{generation="(\d)",le="([^"]+)"\} (\S+)$', text, re.M
            ):
                per.setdefault(gen, {})[le] = float(value)
            for key, pattern in GC_SCALARS.items():
                for gen, value in re.findall(rf'^{pattern}\{{generation="(\d)"\}} (\S+)$', text, re.M):
                    per.setdefault(gen, {})[key] = float(value)
            out.append(per)
        return out

    # ------------------------------------------------------------ the run

    async def run(self) -> dict[str, Any]:
        args = self.args
        n_news = 0 if args.idle_only else int(args.clients * args.news_share)
        prefilled = await self.prefill(0 if args.idle_only else args.prefill)
        self.start_loadgen(n_news, prefilled)
        await asyncio.sleep(2)
        rss_before = self.server_rss_kb()
        held_before = self.server_connections()
        log(
            f"connecting {args.clients} idle clients ({n_news} news, {args.clients - n_news} market) "
            f"from {len(self.workers)} load-generator processes"
        )
        started = time.monotonic()
        await self.command("connect")
        connect_s = time.monotonic() - started
        await asyncio.sleep(3)
        rss_idle = self.server_rss_kb()
        held_idle = self.server_connections() - held_before
        per_idle_kb = (rss_idle - rss_before) / max(1, held_idle)
        log(f"{held_idle} idle connections held in {connect_s:.1f} s; {per_idle_kb:.1f} KB each")
        if args.idle_only:
            await self.command("close")
            return {
                "mode": "idle",
                "clients": args.clients,
                "processes": len(self.apps),
                "loadgen_procs": len(self.workers),
                "connections_held": held_idle,
                "connect_s": round(connect_s, 1),
                "server_memory": {
                    "rss_before_clients_mb": round(rss_before / 1024, 1),
                    "rss_idle_clients_mb": round(rss_idle / 1024, 1),
                    "per_idle_connection_kb": round(per_idle_kb, 1),
                },
                "goals": {
                    "held_all": held_idle >= args.clients,
                    "under_40kb_per_idle_connection": per_idle_kb < 40,
                },
            }

        gc_start = self.gc_histograms()
        models_start = self.models_summary() if args.inference else None
        await self.command("steady")
        stop = asyncio.Event()
        poster = asyncio.create_task(self.post_news(stop))
        prober = asyncio.create_task(self.probe_sentiment(stop)) if args.probe_rate > 0 else None
        log(f"steady phase: {args.duration} s, churn {args.churn}/s, news {args.news_rate}/s")
        samples: list[tuple[float, int, int]] = []  # (t, server rss KB, client-side held)
        phase_started = time.monotonic()
        cpu_started = sum(cpu_seconds(app.proc.pid) for app in self.apps if app.proc is not None)
        while (elapsed := time.monotonic() - phase_started) < args.duration:
            await asyncio.sleep(2)
            held = sum(r["held"] for r in await self.command("held"))
            samples.append((time.monotonic() - phase_started, self.server_rss_kb(), held))
            if len(samples) % 15 == 0:
                log(f"t={elapsed:.0f}s held={held} rss={samples[-1][1] / 1024:.1f} MB posted={len(self.posted)}")
        stop.set()
        server_cpu_s = (
            sum(cpu_seconds(app.proc.pid) for app in self.apps if app.proc is not None) - cpu_started
        )
        gc_end = self.gc_histograms()
        await asyncio.wait_for(poster, 60)
        if prober is not None:
            await asyncio.wait_for(prober, 60)
        models_end = self.models_summary() if args.inference else None
        log("churn stopped; reconnecting everyone and letting the streams settle")
        stopped = await self.command("stop")
        await asyncio.sleep(3)
        held_end = self.server_connections() - held_before
        reports = await self.command("report", sorted(self.posted))
        await self.command("close")

        news_latency = [v for r in reports for v in r["news_latency_ms"]]
        price_latency = [v for r in reports for v in r["price_latency_ms"]]
        lost = sum(r["lost"] for r in reports)
        duplicates = sum(r["duplicates"] for r in reports)
        closes: dict[str, int] = {}
        for r in reports:
            for code, count in r["closes_by_server"].items():
                closes[str(code)] = closes.get(str(code), 0) + count
        steady = [(t, rss) for t, rss, _ in samples if t >= args.warmup]
        slope = _slope(steady)
        window = [(t, rss) for t, rss, _ in samples if t >= max(args.warmup, args.duration - 120)]
        window_slope = _slope(window)
        window_growth_kb = window_slope * (window[-1][0] - window[0][0]) if window_slope is not None else None
        flat = (
            window_growth_kb is not None and window_growth_kb < FLAT_FRACTION * window[0][1]
        )
        loop_lag = [r["loop_lag_ms"] for r in reports]
        news_ms, price_ms = _distribution(news_latency), _distribution(price_latency)
        news_p99, price_p99 = news_ms["p99"], price_ms["p99"]
        return {
            "clients": args.clients,
            "processes": len(self.apps),
            "shared_port": self.shared_port,
            "server_env": dict(_pairs(args.server_env)),
            "duration_s": args.duration,
            "churn_connects_per_s": args.churn,
            "connections_held": {
                "idle_phase": held_idle,
                "steady_min": min(h for _, _, h in samples),
                "steady_mean": round(statistics.fmean(h for _, _, h in samples), 1),
                "end": held_end,
            },
            "connect_failures": sum(r["connect_failures"] for r in reports),
            "reconnects": sum(r["reconnects"] for r in reports),
            "messages_delivered": sum(r["delivered"] for r in reports),
            "news": {
                "posted": len(self.posted),
                "clients": n_news,
                "lost": lost,
                "duplicates": duplicates,
                "history_gap_errors": sum(r["history_gap_errors"] for r in reports),
                "latency_ms": news_ms,
                # POST to its 201: stored, journaled and written to every socket. The rest of the
                # delivery latency above is the kernel and the load generators reading.
                "ack_ms": _distribution(self.ack_ms),
            },
            "prices": {"latency_ms": price_ms},
            "probe_ms": {**_distribution(self.probe_ms), "errors": self.probe_errors} if prober else None,
            "models": {"steady_start": models_start, "end": models_end} if args.inference else None,
            "server_memory": {
                "rss_before_clients_mb": round(rss_before / 1024, 1),
                "rss_idle_clients_mb": round(rss_idle / 1024, 1),
                "per_idle_connection_kb": round(per_idle_kb, 1),
                "rss_steady_start_mb": round(steady[0][1] / 1024, 1) if steady else None,
                "rss_end_mb": round(samples[-1][1] / 1024, 1),
                "growth_kb_per_min": round(slope * 60, 1) if slope is not None else None,
                "last_window_s": round(window[-1][0] - window[0][0]) if window else None,
                "last_window_growth_kb_per_min": round(window_slope * 60, 1) if window_slope is not None else None,
                "last_window_flat": flat,
                "flat_rule": f"least-squares growth over the window < {FLAT_FRACTION:.0%} of the RSS",
                "rss_mb_every_10s": [round(rss / 1024, 1) for _, rss, _ in samples[4::5]],
            },
            "server_cpu_percent": round(100 * server_cpu_s / args.duration, 1),
            "server_gc": _gc_delta(gc_start, gc_end),
            "machine_load_avg_1m_end": round(os.getloadavg()[0], 2),
            "server_counters": {
                "slow_consumer_closes": self.server_counter("hub_ws_slow_consumer_closes_total"),
                "refused_connections": self.server_counter("hub_ws_refused_connections_total"),
                "dropped_coalesced": self.server_counter("hub_ws_messages_dropped_total"),
            },
            "closes_by_server": closes,
            "client_loop_lag_ms": {
                "p99": max((lag["p99"] or 0.0) for lag in loop_lag),
                "max": max((lag["max"] or 0.0) for lag in loop_lag),
            },
            "loadgen": [
                {
                    "pid": r["pid"],
                    "clients": r["clients"],
                    "loop_lag_ms": r["loop_lag_ms"],
                    "cpu_percent": s["cpu_percent"],
                }
                for r, s in zip(reports, stopped, strict=True)
            ],
            "goals": {
                "held_all": held_end >= args.clients and min(h for _, _, h in samples) >= 0.9 * args.clients,
                "news_p99_under_100ms": (news_p99 or 1e9) < 100,
                "price_p99_under_100ms": (price_p99 or 1e9) < 100,
                "news_lost_zero": lost == 0,
                "news_duplicates_zero": duplicates == 0,
                "memory_flat_last_window": flat,
                "loadgen_lag_p99_under_20ms": max((lag["p99"] or 0.0) for lag in loop_lag) < 20,
                "news_p99_under_1s": (news_p99 or 1e9) < 1000,
                **({"probe_p50_under_50ms": (_distribution(self.probe_ms)["p50"] or 1e9) < 50} if prober else {}),
            },
        }


def _pairs(items: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--server-env takes KEY=VALUE, got {item!r}")
        pairs.append((key, value))
    return pairs


def _gc_delta(
    start: list[dict[str, dict[str, float]]] | None, end: list[dict[str, dict[str, float]]] | None
) -> dict[str, Any]:
    """Pauses per generation during the steady phase: count, total, buckets; max is since start."""
    if start is None or end is None:
        return {"value": None, "reason": "processes share one port: /metrics reaches any one of them"}
    out: dict[str, Any] = {}
    for index, (before, after) in enumerate(zip(start, end, strict=True)):
        per: dict[str, Any] = {}
        for gen in sorted(after):
            bounds = [le for le in after[gen] if le not in GC_SCALARS]
            count = after[gen].get("+Inf", 0) - before.get(gen, {}).get("+Inf", 0)
            buckets = {le: after[gen][le] - before.get(gen, {}).get(le, 0) for le in bounds}
            per[gen] = {
                "collections": int(count),
                "pause_total_ms": round(1000 * (after[gen].get("sum", 0) - before.get(gen, {}).get("sum", 0)), 1),
                "p50_ms_at_most": _bucket_rank(buckets, count, 0.50),
                "p99_ms_at_most": _bucket_rank(buckets, count, 0.99),
                "cpu_total_ms": round(1000 * (after[gen].get("cpu", 0) - before.get(gen, {}).get("cpu", 0)), 1),
                "max_ms_since_start": round(1000 * after[gen].get("max", 0), 1),
                "collected_objects": int(after[gen].get("collected", 0) - before.get(gen, {}).get("collected", 0)),
                "cumulative_by_le_s": {le: int(v) for le, v in buckets.items()},
            }
        out[f"process_{index}"] = per
    return out


def _bucket_rank(buckets: dict[str, float], count: float, q: float) -> float | None:
    if count <= 0:
        return None
    for le, cumulative in buckets.items():
        if cumulative >= q * count:
            return None if le == "+Inf" else round(float(le) * 1000, 2)
    return None


def _slope(points: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS (KB) over time (s)."""
    if len(points) < 3:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    denominator = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / denominator if denominator else None


@contextlib.contextmanager
def _servers(count: int, base: Path, shared_port: bool, extra_env: dict[str, str]):  # type: ignore[no-untyped-def]
    redis = None
    apps: list[AppProcess] = []
    try:
        env = {**SERVER_ENV, **extra_env}
        if count > 1:
            from testbed.services import RedisServer

            redis = RedisServer(base / "redis").start()
            env["REDIS_URL"] = redis.url
        port = free_port()
        for i in range(count):
            if shared_port:
                apps.append(start_on_shared_port(base, f"app{i}", port, env))
                continue
            data_dir = base / f"app{i}"
            data_dir.mkdir(parents=True)
            # With models on, the app imports torch and transformers before it answers.
            apps.append(AppProcess(port=free_port(), data_dir=data_dir, env=env).start(timeout=600))
        if env.get("ENABLE_INFERENCE") == "1":
            for app in apps:
                _wait_for_models(app)
        yield apps
    finally:
        for app in apps:
            app.stop()
        if redis is not None:
            redis.stop()


def _wait_for_models(app: AppProcess, timeout_s: float = 900.0) -> None:
    """Wait until no model of the app is loading (the budget measured, the chosen ones loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = httpx.get(f"{app.http}/api/models", timeout=30).json()
        if body["loading"] == 0:
            log("models settled: " + ", ".join(f"{m['id']}={m['status']}" for m in body["models"]))
            return
        time.sleep(2)
    raise TimeoutError(f"models still loading after {timeout_s:.0f} s")


@contextlib.contextmanager
def _stand_in_hub(models: list[str], base: Path):  # type: ignore[no-untyped-def]
    """Serve full-size stand-ins of `models` from a local Hub; yield the app's environment for it."""
    if not models:
        yield {}
        return
    from testbed.hub_standin import StandinHub, build_catalog_checkpoint, running_hub

    hub = StandinHub()
    for index, model_id in enumerate(models):
        log(f"building a full-size stand-in of {model_id}")
        folder = base / "src" / model_id.replace("/", "--")
        path = build_catalog_checkpoint(folder, model_id, full_size=True, seed=index)
        hub.add_dir(model_id, path)
    with running_hub(hub):
        yield {
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_CACHE": str(base / "hub-cache"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }


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
    parser.add_argument(
        "--shared-port", action="store_true", help="the app processes share one port (REUSE_PORT=1)"
    )
    parser.add_argument(
        "--procs", type=int, default=procs_default(), help="load-generator processes (default: CPU count, 2-8)"
    )
    parser.add_argument(
        "--idle-only", action="store_true", help="only hold --clients idle sockets and report RSS per connection"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE",
        help="extra environment of the app processes, e.g. GC_FREEZE=1 or SERVER_LOOP=asyncio",
    )
    parser.add_argument(
        "--inference", action="store_true",
        help="run the models (ENABLE_INFERENCE=1, MODELS unset: the measured budget picks them)",
    )
    parser.add_argument(
        "--hub-model", action="append", default=[], metavar="ID",
        help="serve a full-size stand-in of this catalog model from a local stand-in Hub (implies --inference)",
    )
    parser.add_argument(
        "--probe-rate", type=float, default=0.0,
        help="single texts per second asked of the embedded model through POST /api/sentiment (needs --inference)",
    )
    args = parser.parse_args(argv)
    args.inference = args.inference or bool(args.hub_model)
    # Both sides hold one descriptor per socket: raise the soft limit before the servers start, so
    # they inherit it (5,000 idle sockets need more than the usual 1,024).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 1024)), hard))
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp,
        _stand_in_hub(args.hub_model, Path(tmp)) as hub_env,
        _servers(
            args.processes,
            Path(tmp),
            args.shared_port,
            {**({"ENABLE_INFERENCE": "1"} if args.inference else {}), **hub_env, **dict(_pairs(args.server_env))},
        ) as apps,
    ):
        soak = Soak(apps, args, shared_port=args.shared_port)
        try:
            result = asyncio.run(soak.run())
        finally:
            soak.stop_loadgen()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
