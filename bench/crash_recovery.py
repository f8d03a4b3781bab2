"""Crash recovery: a locked database, SIGKILL mid-ingestion, a restart on the same data. Prints JSON.

    python -m bench.crash_recovery                 # one run, about 25 s
    python -m bench.crash_recovery --lock-s 8      # the issue's 8 s lock (the default)

What it does, against a real `python app.py` (testbed/harness.py) on a free loopback port:
(1) news clients connect to /ws/news (two raw sockets and the shipped `crypto_hub_client.HubClient`) and
`--posters` loops post news to `POST /api/news` (a 503 is retried later with the same URL);
(2) another process's connection holds the SQLite database with `BEGIN EXCLUSIVE` for `--lock-s`
seconds, as a backup would; (3) `--kill-after-s` into the lock the server gets SIGKILL; (4) once the
lock is gone the server restarts on the same data and port, the raw sockets reconnect with
`?since=<last seq>&epoch=<epoch>`, a late joiner replays the whole retained history, and posting goes
on for `--after-s` seconds.

Counted: `acked_lost_store` (a 201 whose URL is not in the store, or under another seq),
`acked_lost_ws` (a 201 whose item never reached the resuming raw socket under its seq),
`acked_lost_client` (the same for the shipped client, which drops a reused seq as a duplicate) and `reused_pairs`
(`(epoch, seq)` pairs that clients saw naming two different items). The promise is zero on each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from core.endpoints import NEWS_PATH
from testbed.harness import FAST_ENV, AppProcess, free_port, resuming_news


@dataclass
class Observed:
    """What the clients saw and what the server acknowledged."""

    acked: dict[str, int] = field(default_factory=dict)  # url -> seq of its 201
    pairs: dict[tuple[str, int], set[str]] = field(default_factory=dict)  # (epoch, seq) -> urls
    resuming: set[tuple[str, int]] = field(default_factory=set)  # (url, seq) the resuming socket got
    client: set[tuple[str, int]] = field(default_factory=set)  # (url, seq) the shipped client handed over
    refused: int = 0  # 503s and connection errors (retried, never acknowledged)

    def saw(self, message: dict[str, Any]) -> str | None:
        if message.get("type") != "news":
            return None
        url = str(message["data"]["url"])
        self.pairs.setdefault((str(message["epoch"]), int(message["seq"])), set()).add(url)
        return url


def hold_database(path: Path, seconds: float, locked: threading.Event) -> None:
    """Hold SQLite's write lock with `BEGIN EXCLUSIVE` for `seconds`, as a backup would."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def post_loop(app: AppProcess, seen: Observed, name: str, stop: asyncio.Event) -> None:
    """Post news until `stop`; retry a refused URL until it is acknowledged (or `stop`)."""
    headers = {"Authorization": f"Bearer {app.env['ADMIN_TOKEN']}"}
    async with httpx.AsyncClient(timeout=30) as http:
        i = 0
        url = f"https://crash.example/{name}/{i}"
        while not stop.is_set():
            try:
                reply = await http.post(f"{app.http}/api/news", headers=headers,
                                        json={"title": f"{name} {i}", "source": "Wire", "url": url})
            except httpx.HTTPError:
                reply = None
            if reply is not None and reply.status_code == 201 and reply.json()["seq"] is not None:
                seen.acked[url] = int(reply.json()["seq"])
                i += 1
                url = f"https://crash.example/{name}/{i}"
                await asyncio.sleep(0.02)
            else:
                seen.refused += 1
                await asyncio.sleep(0.2)


async def raw_socket(app: AppProcess, seen: Observed, stop: asyncio.Event, *, resuming: bool) -> None:
    """Read /ws/news; after a drop reconnect with `?since=&epoch=` (the documented resume)."""
    async for message in resuming_news(app, stop, retry_s=0.1):
        url = seen.saw(message)
        if url is not None and resuming:
            seen.resuming.add((url, int(message["seq"])))


async def late_joiner(app: AppProcess, seen: Observed, epoch: str) -> None:
    """Replay the whole retained history of `epoch` (what any resuming client could be sent)."""
    with contextlib.suppress(OSError, websockets.WebSocketException, TimeoutError):
        async with websockets.connect(app.ws(f"{NEWS_PATH}?since=0&epoch={epoch}"), open_timeout=2) as ws:
            while True:
                seen.saw(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))


async def shipped_client(app: AppProcess, seen: Observed, stop: asyncio.Event) -> None:
    """The shipped Python client: it resumes on its own and drops what it thinks it has seen."""
    from crypto_hub_client import Backoff, HubClient

    async with HubClient(app.ws(NEWS_PATH), backoff=Backoff(initial=0.2, cap=1.0)) as client:
        while not stop.is_set():
            try:
                message = await client.recv(timeout=0.5)
            except TimeoutError:
                continue
            url = seen.saw(message)
            if url is not None:
                seen.client.add((url, int(message["seq"])))


def stored_news(data_dir: Path) -> dict[str, int | None]:
    """Return url -> seq of every stored news item (read straight from the SQLite file)."""
    conn = sqlite3.connect(data_dir / "hub.sqlite3", timeout=10)
    try:
        return dict(conn.execute("SELECT url, seq FROM news").fetchall())
    finally:
        conn.close()


async def measure(data_dir: Path, *, lock_s: float = 8.0, kill_after_s: float = 6.5, before_s: float = 2.0,
                  after_s: float = 4.0, posters: int = 4) -> dict[str, Any]:
    """Run the scenario once and return the counts."""
    app = AppProcess(port=free_port(), data_dir=data_dir, env={**FAST_ENV, "LOG_LEVEL": "WARNING"})
    app.start()
    seen = Observed()
    stop_posting, stop_reading = asyncio.Event(), asyncio.Event()
    readers = [
        asyncio.create_task(raw_socket(app, seen, stop_reading, resuming=True)),
        asyncio.create_task(raw_socket(app, seen, stop_reading, resuming=False)),
        asyncio.create_task(shipped_client(app, seen, stop_reading)),
    ]
    try:
        await asyncio.sleep(0.5)
        loops = [asyncio.create_task(post_loop(app, seen, f"p{i}", stop_posting)) for i in range(posters)]
        await asyncio.sleep(before_s)
        locked = threading.Event()
        locker = threading.Thread(target=hold_database, args=(data_dir / "hub.sqlite3", lock_s, locked))
        locker.start()
        await asyncio.to_thread(locked.wait, 10)
        await asyncio.sleep(kill_after_s)
        app.stop(signal.SIGKILL)
        await asyncio.to_thread(locker.join)
        app.start()
        epochs = {epoch for epoch, _ in seen.pairs}
        await asyncio.sleep(after_s)
        stop_posting.set()
        await asyncio.gather(*loops)
        await asyncio.sleep(1.5)  # the last items reach every reader
        await asyncio.gather(*(late_joiner(app, seen, epoch) for epoch in epochs))
    finally:
        stop_reading.set()
        await asyncio.gather(*readers, return_exceptions=True)
        app.stop()
    stored = stored_news(data_dir)
    return {
        "acknowledged": len(seen.acked),
        "refused_attempts": seen.refused,
        "acked_lost_store": sum(1 for url, seq in seen.acked.items() if stored.get(url) != seq),
        "acked_lost_ws": sum(1 for pair in seen.acked.items() if pair not in seen.resuming),
        "acked_lost_client": sum(1 for pair in seen.acked.items() if pair not in seen.client),
        "reused_pairs": sum(1 for urls in seen.pairs.values() if len(urls) > 1),
        "pairs_seen": len(seen.pairs),
        "epochs_seen": len({epoch for epoch, _ in seen.pairs}),
        "lock_s": lock_s,
        "kill_after_s": kill_after_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock-s", type=float, default=8.0)
    parser.add_argument("--kill-after-s", type=float, default=6.5)
    parser.add_argument("--after-s", type=float, default=4.0)
    parser.add_argument("--posters", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hub-crash-") as tmp:
        result = asyncio.run(measure(Path(tmp), lock_s=args.lock_s, kill_after_s=args.kill_after_s,
                                     after_s=args.after_s, posters=args.posters))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
