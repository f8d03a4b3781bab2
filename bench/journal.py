"""Journal before fan-out vs fan-out before journal: what a news item costs until a socket sees it. Prints JSON.

    python -m bench.journal              # 300 items each way, SQLite in a temp dir
    python -m bench.journal --items 1000
    python -m bench.journal --http       # POST /api/news with synchronous=NORMAL vs FULL
    python -m bench.journal --http --postgres  # ... and on a shared PostgreSQL (fsync on)
    python -m bench.journal --keep       # what a follower pays to store the news it receives

Both ways run in this process against the same kind of store, one after the other:

- `journal_first` (what the desk does): `Bus.publish_durable` stamps the seq, commits the item and its
  journal entry in one transaction in a worker thread, then fans out. Timed from the call to the
  listener seeing the envelope, which is also when the item may be acknowledged.
- `stream_first` (the first release): `Bus.publish` fans out at once and queues the journal entry
  for a background thread, then the item is saved in a worker thread. Timed to the listener (the
  fan-out) and to the end of the save (when the first release acknowledged).

The ratio `journal_first_to_socket_p50 / stream_first_to_socket_p50` is the price of never naming
two items with one seq; `journal_first_ack_p50 / stream_first_ack_p50` says whether acknowledging
got slower.

`--http` measures what fsyncing every commit costs an operator: the whole `POST /api/news` (a real
uvicorn on a loopback port in this process, the app without UI, inference or producers), timed by
the client from request to `201`, SQLite with `synchronous=NORMAL` (the WAL reaches the disk at
checkpoints: power loss rolls back the last commits) against `synchronous=FULL` (every commit
fsyncs it). The two alternate in `--rounds` rounds on fresh databases in `--dir` (a temp dir on
the disk the app would use: tmpfs would make fsync free), so drift of a busy machine hits both.

`--keep` measures what "every process persists what it receives" costs a follower (SQLite, FULL):
`Store.keep_news` per item when items arrive one at a time (live) and in batches of 200 (catching
up after a reconnect), against the leader's own `commit_news` per item in the same run (baseline).
It runs in the follower's keep task, off its event loop and off the leader's acknowledgement path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.figures import percentile
from core.bus import Bus, Envelope
from core.records import NewsItem
from core.store import Store
from desk.news import news_message


def _item(way: str, i: int) -> NewsItem:
    return NewsItem(title=f"{way} {i}", description="bench", url=f"https://bench.example/{way}/{i}",
                    source="Bench", published_at=datetime.now(UTC))


def _pct(values: list[float], q: float) -> float:
    figure = percentile(values, q, scale=1000, digits=3)  # seconds in, milliseconds out
    assert figure is not None, "every run times at least one item"
    return figure


async def journal_first(store: Store, items: int) -> dict[str, float]:
    """Time the desk's path: commit (item + journal) in a thread, then fan out."""
    bus = Bus(journal=store)
    seen: dict[int, float] = {}
    bus.add_listener("news", lambda env: seen.__setitem__(env.seq, time.perf_counter()))
    latencies = []
    for i in range(items):
        item = _item("durable", i)
        started = time.perf_counter()

        def commit(envelope: Envelope, item: NewsItem = item) -> None:
            store.commit_news(item, envelope)

        envelope = await bus.publish_durable("news", news_message(item), commit)
        latencies.append(seen[envelope.seq] - started)
    return {"to_socket_p50_ms": _pct(latencies, 0.5), "to_socket_p99_ms": _pct(latencies, 0.99),
            "ack_p50_ms": _pct(latencies, 0.5), "ack_p99_ms": _pct(latencies, 0.99)}


async def stream_first(store: Store, items: int) -> dict[str, float]:
    """Time the first release's path: fan out, queue the journal entry, save the item in a thread."""
    bus = Bus(journal=store)
    seen: dict[int, float] = {}
    bus.add_listener("news", lambda env: seen.__setitem__(env.seq, time.perf_counter()))
    to_socket, to_ack = [], []
    for i in range(items):
        item = _item("stream", i)
        started = time.perf_counter()
        envelope = bus.publish("news", news_message(item))
        to_socket.append(seen[envelope.seq] - started)
        await asyncio.to_thread(store.save_news, item, envelope.seq)
        to_ack.append(time.perf_counter() - started)
    return {"to_socket_p50_ms": _pct(to_socket, 0.5), "to_socket_p99_ms": _pct(to_socket, 0.99),
            "ack_p50_ms": _pct(to_ack, 0.5), "ack_p99_ms": _pct(to_ack, 0.99)}


async def run(items: int) -> dict[str, Any]:
    """Run both ways on fresh SQLite stores and return the JSON report."""
    with tempfile.TemporaryDirectory(prefix="hub-journal-") as tmp:
        first = Store(data_dir=Path(tmp) / "first")
        durable = await journal_first(first, items)
        first.close()
        second = Store(data_dir=Path(tmp) / "second")
        streamed = await stream_first(second, items)
        second.close()
    return {
        "items": items,
        "journal_first": durable,
        "stream_first": streamed,
        "to_socket_ratio_p50": round(durable["to_socket_p50_ms"] / max(streamed["to_socket_p50_ms"], 1e-3), 1),
        "ack_ratio_p50": round(durable["ack_p50_ms"] / max(streamed["ack_p50_ms"], 1e-3), 2),
        "baseline": "stream_first",
    }


async def post_round(
    directory: Path, synchronous: str, items: int, database_url: str | None = None
) -> list[float]:
    """Serve a fresh app with `synchronous` (or on `database_url`); time `items` POSTs of new news, one by one."""
    import httpx

    from app import build_app
    from compose import compose
    from core.config import Settings
    from testbed.harness import FAST_ENV, uvicorn_in_this_loop

    env = {**FAST_ENV, "DATA_DIR": str(directory), "LOG_LEVEL": "WARNING"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    settings = Settings.from_env(env)
    parts = compose(settings)
    app = build_app(parts)
    store = parts.store
    store.synchronous = synchronous
    store.engine.dispose()  # the pool's connections were opened with the default: reopen with this one
    headers = {"Authorization": f"Bearer {FAST_ENV['ADMIN_TOKEN']}"}
    latencies = []
    async with uvicorn_in_this_loop(app) as port, httpx.AsyncClient(timeout=30) as http:
        for i in range(items):
            body = {"title": f"fsync {synchronous} {i}", "source": "Bench",
                    "url": f"https://bench.example/{directory.name}/{i}"}
            started = time.perf_counter()
            reply = await http.post(f"http://127.0.0.1:{port}/api/news", json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if reply.status_code != 201:
                raise RuntimeError(f"POST answered {reply.status_code}: {reply.text[:200]}")
    await asyncio.to_thread(store.close)
    return latencies


async def run_http(items: int, rounds: int, directory: Path | None, postgres: bool = False) -> dict[str, Any]:
    """Alternate NORMAL and FULL rounds of POST /api/news; return p50/p99 per setting and their ratio.

    With `postgres`, a third kind of round posts to an app on a local PostgreSQL with fsync on (the
    shared database a cluster would otherwise have to require).
    """
    import shutil
    from contextlib import ExitStack

    base = Path(tempfile.mkdtemp(prefix="hub-fsync-", dir=directory))
    modes = ("NORMAL", "FULL", "POSTGRES") if postgres else ("NORMAL", "FULL")
    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    with ExitStack() as stack:
        url = None
        if postgres:
            from testbed.services import postgres_server

            url = stack.enter_context(postgres_server(fsync=True)).url
        try:
            for r in range(rounds):
                for mode in modes:
                    on_postgres = mode == "POSTGRES"
                    timings[mode] += await post_round(base / f"{mode.lower()}-{r}", "FULL" if on_postgres else mode,
                                                      items, url if on_postgres else None)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    report: dict[str, Any] = {"items": items * rounds, "rounds": rounds, "method": "POST /api/news, SQLite WAL"}
    for mode, key in (("NORMAL", "before_synchronous_normal"), ("FULL", "after_synchronous_full")):
        report[key] = {"p50_ms": _pct(timings[mode], 0.5), "p99_ms": _pct(timings[mode], 0.99)}
    before, after = report["before_synchronous_normal"], report["after_synchronous_full"]
    report["ratio_p50"] = round(after["p50_ms"] / max(before["p50_ms"], 1e-3), 2)
    report["ratio_p99"] = round(after["p99_ms"] / max(before["p99_ms"], 1e-3), 2)
    if postgres:
        report["shared_postgresql_fsync_on"] = {"p50_ms": _pct(timings["POSTGRES"], 0.5),
                                                "p99_ms": _pct(timings["POSTGRES"], 0.99)}
    report["baseline"] = "before_synchronous_normal"
    return report


def run_keep(items: int) -> dict[str, Any]:
    """Time commit_news (the leader), keep_news one by one and keep_news in batches, per item."""
    from desk.news_relay import KEEP_BATCH

    bus = Bus()
    envelopes = [(_item("keep", i), bus.stamp("news", news_message(_item("keep", i)))) for i in range(items)]
    report: dict[str, Any] = {"items": items, "synchronous": "FULL"}
    with tempfile.TemporaryDirectory(prefix="hub-keep-") as tmp:
        for name in ("leader_commit_news", "follower_keep_live", "follower_keep_batched"):
            store = Store(data_dir=Path(tmp) / name)
            per_item: list[float] = []
            if name == "follower_keep_batched":
                for start in range(0, items, KEEP_BATCH):
                    batch = envelopes[start:start + KEEP_BATCH]
                    began = time.perf_counter()
                    store.keep_news(batch)
                    per_item += [(time.perf_counter() - began) / len(batch)] * len(batch)
            else:
                for item, envelope in envelopes:
                    began = time.perf_counter()
                    if name == "leader_commit_news":
                        store.commit_news(item, envelope)
                    else:
                        store.keep_news([(item, envelope)])
                    per_item.append(time.perf_counter() - began)
            store.close()
            report[name] = {"per_item_p50_ms": _pct(per_item, 0.5), "per_item_p99_ms": _pct(per_item, 0.99)}
    base = report["leader_commit_news"]["per_item_p50_ms"]
    report["keep_live_ratio_p50"] = round(report["follower_keep_live"]["per_item_p50_ms"] / max(base, 1e-3), 2)
    report["keep_batched_ratio_p50"] = round(report["follower_keep_batched"]["per_item_p50_ms"] / max(base, 1e-3), 3)
    report["baseline"] = "leader_commit_news"
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--http", action="store_true", help="time POST /api/news with synchronous NORMAL vs FULL")
    parser.add_argument("--keep", action="store_true", help="time a follower storing the news it receives")
    parser.add_argument("--postgres", action="store_true", help="--http: add rounds on a local PostgreSQL, fsync on")
    parser.add_argument("--rounds", type=int, default=3, help="--http: alternating rounds of --items posts each")
    parser.add_argument("--dir", type=Path, default=None, help="--http: where the databases go (default: the temp dir)")
    args = parser.parse_args()
    if args.keep:
        report = run_keep(args.items)
    else:
        measure = run_http(args.items, args.rounds, args.dir, args.postgres) if args.http else run(args.items)
        report = asyncio.run(measure)
    json.dump(report, sys.stdout, separators=(",", ":"))
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
