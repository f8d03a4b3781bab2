"""Price rollups: one open/high/low/close row per symbol, interval and bucket, kept on write.

`/api/history` and the UI's chart read these rows, so a request costs at most `limit` rows of an
index range whatever the store's age. Raw points are folded in as they are saved, in the
same transaction; points stored before rollups existed are backfilled in id order by a scheduled
task (`backfill_step`), and retention deletes old raw points and old 1m buckets in small batches
(`prune_before`). docs/retention.md describes the schedule.

Merging is commutative (open from the earliest point, close from the latest, high/low extremes,
counts added), so a backfill and live writes may fold points into the same bucket in any order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.clock import format_utc
from core.store.database import metadata

__all__ = [
    "BACKFILL_KEY",
    "INTERVALS",
    "BackfillConflict",
    "RawPoint",
    "add_points",
    "aggregate",
    "backfill_step",
    "epoch_seconds",
    "prune_before",
    "price_rollups",
    "read_buckets",
]

INTERVALS = {"1m": 60, "1h": 3600, "1d": 86400}
BACKFILL_KEY = "price_rollups_backfill"  # meta: {"upto": last raw id to fold in, "done": last id folded in}

price_rollups = Table(
    "price_rollups",
    metadata,
    Column("span", String(4), primary_key=True),  # "1m", "1h", "1d" ("interval" is reserved in PostgreSQL)
    Column("symbol", String(16), primary_key=True),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),  # bucket start, Unix seconds
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("first_ts", Float, nullable=False),  # Unix seconds of the points open and close came from
    Column("last_ts", Float, nullable=False),
    Column("source", String(32), nullable=False),  # the latest point's source
    Column("points", Integer, nullable=False),
    Index("ix_price_rollups_span_bucket", "span", "bucket"),  # retention deletes by age
)


class BackfillConflict(Exception):
    """Another process folded the same raw points in first; this transaction must roll back."""


@dataclass(frozen=True)
class RawPoint:
    """One stored price as the rollups need it."""

    symbol: str
    ts: float  # Unix seconds
    price: float
    source: str


def aggregate(points: Iterable[RawPoint]) -> list[dict[str, Any]]:
    """Fold points into one row per (interval, symbol, bucket), ready for `add_points`."""
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for p in points:
        for span, seconds in INTERVALS.items():
            key = (span, p.symbol, int(p.ts) // seconds * seconds)
            row = rows.get(key)
            if row is None:
                rows[key] = {"span": span, "symbol": p.symbol, "bucket": key[2], "open": p.price, "high": p.price,
                             "low": p.price, "close": p.price, "first_ts": p.ts, "last_ts": p.ts,
                             "source": p.source, "points": 1}
                continue
            row["high"] = max(row["high"], p.price)
            row["low"] = min(row["low"], p.price)
            row["points"] += 1
            if p.ts < row["first_ts"]:
                row["open"], row["first_ts"] = p.price, p.ts
            if p.ts >= row["last_ts"]:
                row["close"], row["last_ts"], row["source"] = p.price, p.ts, p.source
    return list(rows.values())


UPSERT_DIALECTS = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


def add_points(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Merge aggregated rows into the stored buckets (an upsert on SQLite and PostgreSQL)."""
    if not rows:
        return
    if conn.dialect.name not in UPSERT_DIALECTS:
        _merge_by_reading(conn, rows)
        return
    conn.execute(_upsert(conn.dialect.name), rows)


@functools.cache
def _upsert(dialect: str) -> Any:
    # Built once per dialect: building it per save made about 120 objects in reference cycles
    # (the `excluded` alias and its columns) every price tick, garbage only the collector frees.
    statement: Any = UPSERT_DIALECTS[dialect](price_rollups)
    new, old = statement.excluded, price_rollups.c
    earlier, later = new.first_ts < old.first_ts, new.last_ts >= old.last_ts
    return statement.on_conflict_do_update(
        index_elements=[old.span, old.symbol, old.bucket],
        set_={
            "open": case((earlier, new.open), else_=old.open),
            "first_ts": case((earlier, new.first_ts), else_=old.first_ts),
            "close": case((later, new.close), else_=old.close),
            "source": case((later, new.source), else_=old.source),
            "last_ts": case((later, new.last_ts), else_=old.last_ts),
            "high": case((new.high > old.high, new.high), else_=old.high),
            "low": case((new.low < old.low, new.low), else_=old.low),
            "points": old.points + new.points,
        },
    )


def _merge_by_reading(conn: Connection, rows: list[dict[str, Any]]) -> None:
    # Other databases: read the existing buckets, merge here, write back (one writer: the leader).
    t = price_rollups.c
    keys = [(r["span"], r["symbol"], r["bucket"]) for r in rows]
    stored = {
        (r.span, r.symbol, r.bucket): r._asdict()
        for r in conn.execute(select(price_rollups).where(tuple_(t.span, t.symbol, t.bucket).in_(keys))).all()
    }
    for row in rows:
        old = stored.get((row["span"], row["symbol"], row["bucket"]))
        if old is None:
            conn.execute(price_rollups.insert().values(**row))
            continue
        merged = _merge_pair(old, row)
        conn.execute(update(price_rollups).where(
            t.span == row["span"], t.symbol == row["symbol"], t.bucket == row["bucket"]).values(**merged))


def _merge_pair(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Merge two rows of the same bucket."""
    merged = dict(old)
    merged["high"], merged["low"] = max(old["high"], new["high"]), min(old["low"], new["low"])
    merged["points"] = old["points"] + new["points"]
    if new["first_ts"] < old["first_ts"]:
        merged["open"], merged["first_ts"] = new["open"], new["first_ts"]
    if new["last_ts"] >= old["last_ts"]:
        merged["close"], merged["last_ts"], merged["source"] = new["close"], new["last_ts"], new["source"]
    return merged


def read_buckets(conn: Connection, symbol: str, interval: str, limit: int, now: datetime) -> list[dict[str, Any]]:
    """Return the newest `limit` buckets of the last `limit` intervals, oldest first."""
    seconds = INTERVALS[interval]
    first = (int(now.timestamp()) - seconds * limit) // seconds * seconds  # the bucket the window starts in
    t = price_rollups.c
    rows = conn.execute(
        select(t.bucket, t.open, t.high, t.low, t.close, t.source, t.points)
        .where(t.span == interval, t.symbol == symbol, t.bucket >= first)
        .order_by(t.bucket.desc())
        .limit(limit)
    ).all()
    return [
        {"open": r.open, "high": r.high, "low": r.low, "close": r.close, "source": r.source, "points": r.points,
         "timestamp": format_utc(datetime.fromtimestamp(r.bucket, tz=UTC))}
        for r in reversed(rows)
    ]


def backfill_step(conn: Connection, prices: Table, meta: Table, chunk: int) -> bool:
    """Fold the next `chunk` raw ids stored before rollups existed; return True once none are left.

    Raises:
        BackfillConflict: another process advanced the backfill meanwhile (roll back and retry).
    """
    raw = conn.execute(select(meta.c.value).where(meta.c.key == BACKFILL_KEY)).scalar()
    if raw is None:
        return True
    state = json.loads(raw)
    if state["done"] >= state["upto"]:
        return True
    upto = min(state["done"] + chunk, state["upto"])
    if conn.dialect.name in _EPOCH_SQL:
        _fold_in_sql(conn, prices, state["done"], upto)
    else:
        points = [
            RawPoint(r.symbol, epoch_seconds(r.ts), r.price, r.source)
            for r in conn.execute(
                select(prices.c.symbol, prices.c.ts, prices.c.price, prices.c.source)
                .where(prices.c.id > state["done"], prices.c.id <= upto)
            ).all()
        ]
        add_points(conn, aggregate(points))
    moved = conn.execute(
        update(meta).where(meta.c.key == BACKFILL_KEY, meta.c.value == raw)
        .values(value=json.dumps({"upto": state["upto"], "done": upto}))
    )
    if moved.rowcount != 1:
        raise BackfillConflict(f"backfill state changed under us (expected {raw})")
    return bool(upto >= state["upto"])


# Unix seconds of `prices.ts` in SQL: whole seconds (floored, for buckets) and with the fraction.
_EPOCH_SQL = {
    "sqlite": ("CAST(strftime('%s', substr({ts}, 1, 19)) AS INTEGER)",
               "(CAST(strftime('%s', substr({ts}, 1, 19)) AS INTEGER) + CAST(substr({ts}, 20) AS REAL))"),
    "postgresql": ("CAST(floor(extract(epoch FROM {ts})) AS BIGINT)",
                   "CAST(extract(epoch FROM {ts}) AS DOUBLE PRECISION)"),
}


def _fold_in_sql(conn: Connection, prices: Table, after_id: int, upto_id: int) -> None:
    """Fold raw ids (after_id, upto_id] into the rollups inside the database: no row comes to Python.

    Open and close are the first and last stored points of a bucket (ids follow time for the
    points the app appended); the merge with existing buckets is `add_points`' upsert.
    """
    whole, exact = _EPOCH_SQL[conn.dialect.name]
    for span, seconds in INTERVALS.items():
        # Literal SQL: the same text on SQLite and PostgreSQL but for the epoch expressions.
        select_sql = f"""
            SELECT '{span}', g.symbol, g.bucket, f.price, g.high, g.low, l.price,
                   {exact.format(ts="f.ts")}, {exact.format(ts="l.ts")}, l.source, g.points
            FROM (
                SELECT symbol, ({whole.format(ts="ts")} / {seconds}) * {seconds} AS bucket,
                       MAX(price) AS high, MIN(price) AS low, COUNT(*) AS points,
                       MIN(id) AS first_id, MAX(id) AS last_id
                FROM prices WHERE id > :after_id AND id <= :upto_id
                GROUP BY symbol, ({whole.format(ts="ts")} / {seconds}) * {seconds}
            ) AS g
            JOIN prices AS f ON f.id = g.first_id
            JOIN prices AS l ON l.id = g.last_id
            WHERE 1 = 1
        """  # span and seconds come from INTERVALS, ids are bound: nothing from outside is formatted in
        conn.execute(text(f"""
            INSERT INTO price_rollups (span, symbol, bucket, open, high, low, close, first_ts, last_ts, source, points)
            {select_sql}
            ON CONFLICT (span, symbol, bucket) DO UPDATE SET
                open = CASE WHEN excluded.first_ts < price_rollups.first_ts
                            THEN excluded.open ELSE price_rollups.open END,
                first_ts = CASE WHEN excluded.first_ts < price_rollups.first_ts
                                THEN excluded.first_ts ELSE price_rollups.first_ts END,
                close = CASE WHEN excluded.last_ts >= price_rollups.last_ts
                             THEN excluded.close ELSE price_rollups.close END,
                source = CASE WHEN excluded.last_ts >= price_rollups.last_ts
                              THEN excluded.source ELSE price_rollups.source END,
                last_ts = CASE WHEN excluded.last_ts >= price_rollups.last_ts
                               THEN excluded.last_ts ELSE price_rollups.last_ts END,
                high = CASE WHEN excluded.high > price_rollups.high THEN excluded.high ELSE price_rollups.high END,
                low = CASE WHEN excluded.low < price_rollups.low THEN excluded.low ELSE price_rollups.low END,
                points = price_rollups.points + excluded.points
        """), {"after_id": after_id, "upto_id": upto_id})


def prune_before(conn: Connection, table: Table, column: Any, cutoff: Any, step: Any,
                 where: Any = None) -> int:
    """Delete the oldest `step` worth of rows older than `cutoff`; return how many went (0: done)."""
    condition = column < cutoff if where is None else and_(where, column < cutoff)
    oldest = conn.execute(select(func.min(column)).where(condition)).scalar()
    if oldest is None:
        return 0
    if isinstance(oldest, datetime) and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)  # SQLite drops the offset of UTC timestamps
    bound = min(oldest + step, cutoff)
    bound_condition = column < bound if where is None else and_(where, column < bound)
    return int(conn.execute(delete(table).where(bound_condition)).rowcount or 0)


def epoch_seconds(ts: datetime) -> float:
    """Return Unix seconds of a stored timestamp."""
    # SQLite hands back naive datetimes (stored as UTC) even for timezone-aware columns.
    return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).timestamp()
