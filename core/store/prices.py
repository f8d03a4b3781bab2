"""Price points: appended raw, folded into rollups (rollups.py) on write, answered from the rollups, pruned by age.

docs/retention.md describes what is kept how long.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Float, Integer, String, Table, func, insert, select

from core.clock import utc_now
from core.records import PriceQuote
from core.store import rollups
from core.store.database import Database, meta_table, metadata

__all__ = ["BACKFILL_CHUNK", "PRUNE_STEP", "Prices", "prices"]

prices = Table(
    "prices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(16), index=True, nullable=False),
    Column("ts", DateTime(timezone=True), index=True, nullable=False),
    Column("price", Float, nullable=False),
    Column("source", String(32), nullable=False),
    Column("change_24h", Float),
    Column("change_7d", Float),
    Column("volume_24h", Float),
    Column("market_cap", Float),
)

BACKFILL_CHUNK = 5_000  # raw ids folded into rollups per transaction: write locks of ~0.1 s
PRUNE_STEP = timedelta(hours=6)  # raw points deleted per transaction at most (about 43k at 20 symbols)


class Prices:
    """The price time series of every symbol."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def prepare(conn: Connection) -> None:
        """Mark points stored before rollups existed for `backfill` (once, in the schema's transaction)."""
        if conn.execute(select(meta_table.c.value).where(meta_table.c.key == rollups.BACKFILL_KEY)).first() is None:
            # Points stored before rollups existed are folded in by `backfill`; later ones on write.
            upto = conn.execute(select(func.max(prices.c.id))).scalar() or 0
            conn.execute(insert(meta_table).values(key=rollups.BACKFILL_KEY,
                                                   value=json.dumps({"upto": upto, "done": 0})))

    def save(self, quotes: Iterable[PriceQuote]) -> None:
        """Append price points and fold them into the rollups, in one transaction."""
        quotes = list(quotes)
        if not quotes:
            return
        rows = [
            {"symbol": q.symbol, "ts": q.timestamp, "price": q.price, "source": q.source,
             "change_24h": q.change_24h, "change_7d": q.change_7d, "volume_24h": q.volume_24h,
             "market_cap": q.market_cap}
            for q in quotes
        ]
        buckets = rollups.aggregate(
            rollups.RawPoint(q.symbol, rollups.epoch_seconds(q.timestamp), q.price, q.source) for q in quotes
        )
        with self._db.writing() as conn:
            conn.execute(insert(prices), rows)
            rollups.add_points(conn, buckets)

    def history(self, symbol: str, interval: str = "1m", limit: int = 500) -> list[dict[str, Any]]:
        """Return the buckets (open/high/low/close, points, latest source) of the last `limit` intervals, oldest first.

        Reads at most `limit` rollup rows through the primary key, whatever the store's age.
        """
        with self._db.engine.connect() as conn:
            return rollups.read_buckets(conn, symbol, interval, limit, utc_now())

    def backfill(self) -> bool:
        """Fold the next chunk of points stored before rollups existed; return True when none are left."""
        try:
            with self._db.writing() as conn:
                return rollups.backfill_step(conn, prices, meta_table, BACKFILL_CHUNK)
        except rollups.BackfillConflict:
            return False  # another process folded that chunk; the next call reads the new state

    def prune(self, keep_days: float = 7.0, keep_minute_days: float = 30.0, *,
              should_stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
        """Delete raw points older than `keep_days` and 1m buckets older than `keep_minute_days`.

        Deletes in short transactions (a few hours of data each) so writers are never held for
        long; 1h and 1d buckets are kept. Raw points wait while a rollup backfill still needs them.
        """
        now = utc_now()
        deleted = {"prices": 0, "rollups_1m": 0}
        with self._db.engine.connect() as conn:
            state = conn.execute(select(meta_table.c.value).where(meta_table.c.key == rollups.BACKFILL_KEY)).scalar()
        backfilled = state is None or json.loads(state)["done"] >= json.loads(state)["upto"]
        t = rollups.price_rollups
        minute_cutoff = int((now - timedelta(days=keep_minute_days)).timestamp())
        jobs: list[tuple[Any, ...]] = [
            (t, t.c.bucket, minute_cutoff, int(PRUNE_STEP.total_seconds()), t.c.span == "1m", "rollups_1m"),
        ]
        if backfilled:
            jobs.insert(0, (prices, prices.c.ts, now - timedelta(days=keep_days), PRUNE_STEP, None, "prices"))
        for table, column, cutoff, step, where, name in jobs:
            while not should_stop():
                with self._db.writing() as conn:
                    gone = rollups.prune_before(conn, table, column, cutoff, step, where)
                if not gone:
                    break
                deleted[name] += gone
        return deleted
