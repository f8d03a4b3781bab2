"""Price rollups: history equals the raw points bucketed, backfilled ones included; retention keeps them."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, insert, select, update

from core.clock import format_utc, utc_now
from core.records import PriceQuote
from core.store import Store
from core.store.database import meta_table
from core.store.prices import prices
from core.store.rollups import BACKFILL_KEY, INTERVALS, price_rollups
from testbed.harness import MS, running_app
from testbed.services import PostgresServer, needs_postgres

DAY = timedelta(days=1)


def _walk(start: datetime, count: int, step_s: float, symbol: str = "BTC") -> list[PriceQuote]:
    """Prices that zig-zag, so open/high/low/close of a bucket all differ."""
    return [PriceQuote(symbol, 100 + (i * 37) % 23 + i * 0.01, "test-feed", start + timedelta(seconds=i * step_s))
            for i in range(count)]


def _bucketed(quotes: list[PriceQuote], interval: str) -> list[dict[str, Any]]:
    """Bucket raw points the plain way, as the history promises."""
    seconds = INTERVALS[interval]
    buckets: dict[int, list[PriceQuote]] = {}
    for q in sorted(quotes, key=lambda q: q.timestamp):
        buckets.setdefault(int(q.timestamp.timestamp()) // seconds * seconds, []).append(q)
    return [{"open": b[0].price, "high": max(q.price for q in b), "low": min(q.price for q in b),
             "close": b[-1].price, "source": b[-1].source, "points": len(b),
             "timestamp": format_utc(datetime.fromtimestamp(t, UTC))} for t, b in sorted(buckets.items())]


def _write_raw_as_before_rollups(data_dir: Path, quotes: list[PriceQuote]) -> None:
    """Store raw points the way a version without rollups did: the prices table alone."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "hub.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    prices.create(engine)
    engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO prices (symbol, ts, price, source) VALUES (?, ?, ?, ?)",
                         [(q.symbol, q.timestamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), q.price, q.source)
                          for q in quotes])


def _history(app: Any, interval: str, limit: int = 500) -> list[dict[str, Any]]:
    reply = httpx.get(f"{app.http}/api/history/BTC", params={"interval": interval, "limit": limit}, timeout=10)
    reply.raise_for_status()
    return reply.json()["points"]  # type: ignore[no-any-return]


def _before_today(points: list[dict[str, Any]], quotes: list[PriceQuote]) -> list[dict[str, Any]]:
    # The running app stores its own simulated prices today; compare the buckets our points fill.
    last = max(q.timestamp for q in quotes)
    return [p for p in points if p["timestamp"] <= format_utc(last)]


def test_history_from_rollups_equals_the_raw_points_bucketed(tmp_path: Path):
    quotes = _walk(utc_now() - 3 * DAY, 900, 170.0)  # about 1.8 days
    store = Store(data_dir=tmp_path)
    for i in range(0, len(quotes), 100):
        store.save_quotes(quotes[i:i + 100])
    store.close()
    with running_app(tmp_path, SYMBOLS="BTC,ETH") as app:
        hourly, daily = _history(app, "1h", 100), _history(app, "1d", 10)
    assert _before_today(hourly, quotes) == _bucketed(quotes, "1h")[-100:]
    assert _before_today(daily, quotes) == _bucketed(quotes, "1d")


def test_points_stored_before_rollups_existed_are_backfilled(tmp_path: Path):
    quotes = _walk(utc_now() - 3 * DAY, 12_000, 10.0)  # more than one backfill chunk
    _write_raw_as_before_rollups(tmp_path, quotes)
    expected = _bucketed(quotes, "1h")
    with running_app(tmp_path, SYMBOLS="BTC,ETH") as app:
        deadline = time.monotonic() + 20_000 * MS
        while (got := _before_today(_history(app, "1h", 200), quotes)) != expected and time.monotonic() < deadline:
            time.sleep(100 * MS)
    assert got == expected


def test_minute_buckets_merge_points_saved_in_separate_batches(tmp_path: Path):
    quotes = _walk(utc_now() - timedelta(hours=2), 60, 5.0)
    store = Store(data_dir=tmp_path)
    try:
        for quote in reversed(quotes):  # out of order, one at a time: open and close still follow time
            store.save_quotes([quote])
        history = store.price_history("BTC", "1m", 500)
    finally:
        store.close()
    assert history == _bucketed(quotes, "1m")


def test_pruning_deletes_old_raw_points_and_keeps_the_rollups(tmp_path: Path):
    quotes = _walk(utc_now() - 10 * DAY, 600, 600.0)  # 10 days ago to about 6 days ago
    store = Store(data_dir=tmp_path)
    try:
        store.save_quotes(quotes)
        before = store.price_history("BTC", "1d", 30)
        deleted = store.prune_prices(keep_days=8, keep_minute_days=8)
        with store.engine.connect() as conn:
            oldest = conn.execute(select(func.min(prices.c.ts))).scalar()
        after = store.price_history("BTC", "1d", 30)
        with store.engine.connect() as conn:
            oldest_minute = select(func.min(price_rollups.c.bucket)).where(price_rollups.c.span == "1m")
            minutes = conn.execute(oldest_minute).scalar()
    finally:
        store.close()
    assert deleted["prices"] > 0 and deleted["rollups_1m"] > 0
    assert oldest.replace(tzinfo=UTC) >= utc_now() - 8 * DAY
    assert after == before == _bucketed(quotes, "1d")
    assert minutes is not None
    assert minutes >= (utc_now() - 8 * DAY).timestamp() - 60  # 1m buckets older than their retention went too


def test_pruning_waits_until_old_points_are_folded_into_rollups(tmp_path: Path):
    quotes = _walk(utc_now() - 10 * DAY, 50, 600.0)
    _write_raw_as_before_rollups(tmp_path, quotes)
    store = Store(data_dir=tmp_path)
    try:
        first = store.prune_prices(keep_days=1)
        while not store.backfill_rollups():
            pass
        second = store.prune_prices(keep_days=1)
        daily = store.price_history("BTC", "1d", 30)
    finally:
        store.close()
    assert first["prices"] == 0 and second["prices"] == len(quotes)
    assert daily == _bucketed(quotes, "1d")


def test_the_app_applies_the_retention_on_its_schedule(tmp_path: Path):
    quotes = _walk(utc_now() - 5 * DAY, 200, 600.0)
    _write_raw_as_before_rollups(tmp_path, quotes)
    with running_app(tmp_path, SYMBOLS="BTC,ETH", PRICE_RETENTION_DAYS="2", PRICE_PRUNE_INTERVAL_S="1") as app:
        deadline = time.monotonic() + 20_000 * MS
        while _oldest_raw(tmp_path) < utc_now() - 2 * DAY and time.monotonic() < deadline:
            time.sleep(100 * MS)
        daily = _before_today(_history(app, "1d", 30), quotes)
    assert _oldest_raw(tmp_path) >= utc_now() - 2 * DAY - timedelta(minutes=1)
    assert daily == _bucketed(quotes, "1d")


def _oldest_raw(data_dir: Path) -> datetime:
    with sqlite3.connect(data_dir / "hub.sqlite3") as conn:
        oldest = conn.execute("SELECT min(ts) FROM prices").fetchone()[0]
    return datetime.fromisoformat(oldest).replace(tzinfo=UTC) if oldest else utc_now()


@pytest.mark.postgres
@needs_postgres
def test_rollups_on_postgresql_match_the_raw_points_written_and_backfilled(postgres: PostgresServer, tmp_path: Path):
    live, old = _walk(utc_now() - DAY, 300, 60.0), _walk(utc_now() - 3 * DAY, 300, 60.0)
    store = Store(postgres.url, tmp_path)
    try:
        with store.engine.begin() as conn:  # stored as a version without rollups did, then marked for backfill
            conn.execute(insert(prices), [{"symbol": q.symbol, "ts": q.timestamp, "price": q.price,
                                           "source": q.source} for q in old])
            upto = conn.execute(select(func.max(prices.c.id))).scalar()
            conn.execute(update(meta_table).where(meta_table.c.key == BACKFILL_KEY)
                         .values(value=json.dumps({"upto": upto, "done": 0})))
        store.save_quotes(live)  # rolled up on write, while the backfill is still to come
        while not store.backfill_rollups():
            pass
        hourly = store.price_history("BTC", "1h", 200)
    finally:
        store.close()
    assert hourly == _bucketed(old + live, "1h")
