"""Persistence through SQLAlchemy: SQLite (WAL) under DATA_DIR by default, any DATABASE_URL otherwise.

Holds the price time series, news (unique by URL, with scores), Fear & Greed history, provider
health events, model statistics and the bus journal that lets news `seq`/`epoch` survive a restart.
Calls are synchronous; async callers run every one of them in a thread (`asyncio.to_thread`).
News is committed together with its journal entry (`commit_news`), before any socket sees it; a
journal that cannot write shows in `journal_error` (and `system_status.database`).
Price history is answered from rollups (core/rollups.py) and news search from a full-text index
(core/news_search.py), so a request's work does not grow with the store's age.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core import rollups
from core.bus import Envelope
from core.clock import format_utc, utc_now
from core.news_search import SearchUnavailable, match_clause, prepare_search, scan_by_date, search_words
from core.records import FearGreedReading, NewsItem, PriceQuote
from core.vocabulary import JOURNAL_KEEP

__all__ = ["SearchUnavailable", "Store", "StoreUnavailable"]

logger = logging.getLogger(__name__)

metadata = MetaData()

meta_table = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text))
bus_log = Table(
    "bus_log",
    metadata,
    Column("topic", String(16), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("epoch", String(32), nullable=False),
    Column("key", String(128)),
    Column("source", String(128)),
    Column("match_text", Text),
    Column("text", Text, nullable=False),
)
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
news = Table(
    "news",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", String(1024), unique=True, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("source", String(128), nullable=False),
    Column("published_at", DateTime(timezone=True), index=True, nullable=False),
    Column("image_url", Text),
    Column("sentiment", String(16)),
    Column("sentiment_score", Float),
    Column("sentiment_model", String(128)),
    Column("seq", Integer),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)
fear_greed = Table(
    "fear_greed",
    metadata,
    Column("ts", DateTime(timezone=True), primary_key=True),
    Column("value", Integer, nullable=False),
    Column("classification", String(32), nullable=False),
    Column("source", String(64), nullable=False),
)
source_events = Table(
    "source_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), index=True, nullable=False),
    Column("name", String(64), nullable=False),
    Column("category", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("latency_ms", Float),
)
model_stats = Table("model_stats", metadata, Column("model_id", String(200), primary_key=True), Column("data", Text))

# Built once: `in_(urls)` built per call made about ten objects in reference cycles each time (an
# expanding BindParameter and its clone sets), garbage only the collector could free.
STORED_NEWS_SEQS = select(news.c.url, news.c.seq).where(news.c.url.in_(bindparam("urls", expanding=True)))

SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")
JOURNAL_QUEUE = 10_000  # envelopes waiting for the journal thread; past it they are refused, loudly
BACKFILL_CHUNK = 5_000  # raw ids folded into rollups per transaction: write locks of ~0.1 s
PRUNE_STEP = timedelta(hours=6)  # raw points deleted per transaction at most (about 43k at 20 symbols)


class StoreUnavailable(Exception):
    """The database could not be reached or written; the caller keeps serving from memory."""


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    if moment is None or moment.tzinfo is not None:
        return moment
    from datetime import UTC

    return moment.replace(tzinfo=UTC)


class Store:
    """The app's database. `url=None` means SQLite at `<data_dir>/hub.sqlite3` in WAL mode.

    Args:
        synchronous: SQLite's `PRAGMA synchronous`. `FULL` (the default) fsyncs the WAL at every
            commit, so an acknowledged item survives power loss; `NORMAL` fsyncs only at
            checkpoints: a crash of the process loses nothing, power loss the last commits (and
            their seqs would be handed out again). `bench/journal.py --http` measures the difference.
            PostgreSQL commits durably by default (`fsync` and `synchronous_commit` on).
    """

    def __init__(self, url: str | None = None, data_dir: Path = Path("data"), *, synchronous: str = "FULL") -> None:
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, got {synchronous!r}")
        self.synchronous = synchronous
        if url is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{data_dir / 'hub.sqlite3'}"
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True, "pool_pre_ping": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 5}
        elif url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": 5}  # an unreachable server must not hang startup
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._sqlite_pragmas)
        self._lock = threading.Lock()  # SQLite allows one writer; serialise ours instead of retrying
        self._journal_queue: queue.Queue[Envelope | None] = queue.Queue(JOURNAL_QUEUE)
        self._journal_thread: threading.Thread | None = None
        self._journal_failure: str | None = None  # why the last journal write failed (None: it worked)
        self._journal_crash: str | None = None  # why the journal thread died, until it runs again
        self.last_check: datetime | None = None
        self.online = False
        self.last_error: str | None = None
        self.can_search = False
        for attempt in range(3):
            try:
                self._create_schema()
                self.online, self.last_error = True, None
                break
            except SQLAlchemyError as exc:
                # Replicas starting together race to create the tables on a shared PostgreSQL; retry.
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                time.sleep(0.2 * (attempt + 1))
        else:
            logger.error("store: cannot open %s: %s", self.safe_url, self.last_error)

    def _create_schema(self) -> None:
        metadata.create_all(self.engine)
        rollups.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            self.can_search = prepare_search(conn)
            if conn.execute(select(meta_table.c.value).where(meta_table.c.key == rollups.BACKFILL_KEY)).first() is None:
                # Points stored before rollups existed are folded in by `backfill_rollups`; later ones on write.
                upto = conn.execute(select(func.max(prices.c.id))).scalar() or 0
                conn.execute(insert(meta_table).values(key=rollups.BACKFILL_KEY,
                                                       value=json.dumps({"upto": upto, "done": 0})))

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Checked against SQLITE_SYNCHRONOUS in the constructor, so never anything but a keyword.
        cursor.execute(f"PRAGMA synchronous={self.synchronous}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @property
    def safe_url(self) -> str:
        """Return the URL with any password masked, for logs and status."""
        return self.engine.url.render_as_string(hide_password=True)

    def ping(self) -> bool:
        """Run a trivial query; record and return whether the database answered."""
        self.last_check = utc_now()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            if not self.online:
                self._create_schema()
            with self.engine.begin() as conn:
                # Take the write lock for a moment: `SELECT 1` succeeds even while another program
                # holds the database locked, and then every write of ours would fail.
                conn.execute(delete(meta_table).where(meta_table.c.key == "__ping__"))
            if self._journal_failure is not None:
                self._probe_journal()
            self.online, self.last_error = True, None
        except SQLAlchemyError as exc:
            self.online = False
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"[:300]
        return self.online

    def _probe_journal(self) -> None:
        """Write (and delete) a journal-sized row: a ping that needs no new page hides a full disk."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(insert(meta_table).values(key="__journal_probe__", value="x" * 8192))
            conn.execute(delete(meta_table).where(meta_table.c.key == "__journal_probe__"))
        self._journal_failure = None
    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One write transaction under our lock, failures translated like `_write`'s."""
        try:
            with self._lock, self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            self.online = False
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"[:300]
            raise StoreUnavailable(self.last_error) from exc

    def _write(self, statement: Any, rows: list[dict[str, Any]] | None = None) -> None:
        try:
            with self._lock, self.engine.begin() as conn:
                if rows is None:
                    conn.execute(statement)
                elif rows:
                    conn.execute(statement, rows)
        except IntegrityError:
            raise  # a duplicate is an answer, not an outage
        except SQLAlchemyError as exc:
            self.online = False
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"[:300]
            raise StoreUnavailable(self.last_error) from exc

    # ------------------------------------------------------------ bus journal

    def load_topic(self, topic: str, limit: int) -> tuple[str | None, int, list[Envelope]]:
        """Return (epoch, last seq, last `limit` envelopes) of a journaled topic (the Journal protocol)."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(bus_log).where(bus_log.c.topic == topic).order_by(bus_log.c.seq.desc()).limit(limit)
                ).all()
        except SQLAlchemyError as exc:
            logger.error("store: cannot load %s journal: %s", topic, exc)
            return None, 0, []
        if not rows:
            return None, 0, []
        epoch = rows[0].epoch
        envelopes = [
            Envelope(topic=topic, seq=r.seq, epoch=r.epoch, text=r.text, key=r.key,
                     match_text=r.match_text or "", source=r.source or "")
            for r in reversed(rows)
            if r.epoch == epoch
        ]
        return epoch, rows[0].seq, envelopes

    @property
    def journal_error(self) -> str | None:
        """Return why the journal cannot write now (a failed commit, a full queue, a dead thread), or None."""
        if self._journal_crash is not None:
            return self._journal_crash
        return self._journal_failure

    def _note_journal_failure(self, reason: str) -> None:
        self._journal_failure = f"journal: {reason}"[:300]

    def commit_news(self, item: NewsItem, envelope: Envelope) -> None:
        """Store a news item and journal its envelope in one transaction (before anyone sees it).

        Raises:
            StoreUnavailable: nothing was written (database locked, disk full, unreachable); also
                when the item's URL is stored already under another seq, or the seq is journaled
                already under the same epoch (another writer: refuse rather than name two items).
        """
        try:
            try:
                with self._lock, self.engine.begin() as conn:  # the usual case: two inserts
                    conn.execute(insert(bus_log).values(**_journal_row(envelope)))
                    conn.execute(insert(news).values(**_news_row(item, envelope.seq)))
                    self._trim_journal(conn, envelope)
            except IntegrityError:
                self._commit_news_over_conflict(item, envelope)
        except IntegrityError as exc:
            self._note_journal_failure(f"seq {envelope.seq} of {envelope.topic} is journaled already")
            raise StoreUnavailable(f"journal conflict at {envelope.topic} seq {envelope.seq}") from exc
        except SQLAlchemyError as exc:
            self.online = False
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"[:300]
            self._note_journal_failure(self.last_error)
            raise StoreUnavailable(self.last_error) from exc
        self._journal_failure = None

    def _commit_news_over_conflict(self, item: NewsItem, envelope: Envelope) -> None:
        with self._lock, self.engine.begin() as conn:
            # A row of an older epoch with this seq is history nobody can resume any more.
            conn.execute(delete(bus_log).where(
                (bus_log.c.topic == envelope.topic) & (bus_log.c.seq == envelope.seq)
                & (bus_log.c.epoch != envelope.epoch)))
            journaled = conn.execute(select(bus_log.c.text).where(
                (bus_log.c.topic == envelope.topic) & (bus_log.c.seq == envelope.seq))).first()
            if journaled is None or journaled.text != envelope.text:
                # Absent: insert it. Another message under this epoch and seq: raises.
                conn.execute(insert(bus_log).values(**_journal_row(envelope)))
            # else this very envelope is kept already (received from the backplane): nothing to add.
            stored = conn.execute(select(news.c.seq).where(news.c.url == item.url)).first()
            if stored is None:
                conn.execute(insert(news).values(**_news_row(item, envelope.seq)))
            elif stored.seq != envelope.seq:
                raise StoreUnavailable(f"{item.url} is stored already under seq {stored.seq}")
            self._trim_journal(conn, envelope)

    def keep_news(self, received: list[tuple[NewsItem, Envelope]]) -> int:
        """Store news items another process published, under their seq, and journal their envelopes.

        Idempotent: what is stored already (a shared database, a second delivery) is skipped. So a
        follower that takes over answers a repost as a duplicate and serves the history. Returns
        how many items were new here.

        Raises:
            StoreUnavailable: nothing was written.
        """
        if not received:
            return 0
        try:
            return self._keep_news(received)
        except IntegrityError:
            return self._keep_news(received)  # another writer stored some of them meanwhile: read again

    def _keep_news(self, received: list[tuple[NewsItem, Envelope]]) -> int:
        added = 0
        with self._writing() as conn:
            stored = {row.url: row.seq for row in conn.execute(
                STORED_NEWS_SEQS, {"urls": [item.url for item, _ in received]})}
            for item, envelope in received:
                where = (bus_log.c.topic == envelope.topic) & (bus_log.c.seq == envelope.seq)
                conn.execute(delete(bus_log).where(where & (bus_log.c.epoch != envelope.epoch)))
                if conn.execute(select(bus_log.c.seq).where(where)).first() is None:
                    conn.execute(insert(bus_log).values(**_journal_row(envelope)))
                if item.url not in stored:
                    conn.execute(insert(news).values(**_news_row(item, envelope.seq)))
                    stored[item.url] = envelope.seq
                    added += 1
                elif stored[item.url] != envelope.seq:
                    logger.warning("store: %s is stored under seq %s, received as seq %s; kept as stored",
                                   item.url, stored[item.url], envelope.seq)
                self._trim_journal(conn, envelope)
        return added

    @staticmethod
    def _trim_journal(conn: Any, envelope: Envelope) -> None:
        if envelope.seq % 500 == 0:
            conn.execute(delete(bus_log).where(
                (bus_log.c.topic == envelope.topic) & (bus_log.c.seq <= envelope.seq - JOURNAL_KEEP)))

    def append(self, envelope: Envelope) -> None:
        """Journal one envelope (the Journal protocol) for a topic published without `commit_news`.

        Called on an event loop (the bus publishing), the write happens on a journal thread, in
        order, so a locked or slow database never stalls streaming; `close()` waits for it. The
        queue is bounded: past `JOURNAL_QUEUE` waiting envelopes the journal is reported failing.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._append_now(envelope)
            return
        if self._journal_thread is None or not self._journal_thread.is_alive():
            self._journal_thread = threading.Thread(target=self._write_journal, name="store-journal", daemon=True)
            self._journal_thread.start()
        try:
            self._journal_queue.put_nowait(envelope)
        except queue.Full:
            logger.error("store: journal queue full (%d); %s seq %s not journaled", JOURNAL_QUEUE,
                         envelope.topic, envelope.seq)
            self._note_journal_failure(f"queue full ({JOURNAL_QUEUE} envelopes waiting)")

    def _write_journal(self) -> None:
        self._journal_crash = None
        try:
            while (envelope := self._journal_queue.get()) is not None:
                self._append_now(envelope)
        except Exception as exc:
            # Loud, never silent: status shows it until the next append starts a new thread.
            logger.exception("store: journal thread died; %d envelopes wait", self._journal_queue.qsize())
            self._journal_crash = f"journal thread died: {type(exc).__name__}: {exc}"[:300]

    def _append_now(self, envelope: Envelope) -> None:
        try:
            self._write(insert(bus_log).values(**_journal_row(envelope)))
            if envelope.seq % 500 == 0:
                stale = (bus_log.c.topic == envelope.topic) & (bus_log.c.seq <= envelope.seq - JOURNAL_KEEP)
                self._write(delete(bus_log).where(stale))
            self._journal_failure = None
        except StoreUnavailable as exc:
            logger.error("store: journal append failed, seq %s of %s kept in memory only: %s",
                         envelope.seq, envelope.topic, exc)
            self._note_journal_failure(str(exc))
        except IntegrityError:
            # A shared database already has this seq (another process journaled it as leader).
            logger.warning("store: journal already holds %s seq %s; kept", envelope.topic, envelope.seq)

    # ------------------------------------------------------------ prices

    def save_quotes(self, quotes: Iterable[PriceQuote]) -> None:
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
        with self._writing() as conn:
            conn.execute(insert(prices), rows)
            rollups.add_points(conn, buckets)

    def price_history(self, symbol: str, interval: str = "1m", limit: int = 500) -> list[dict[str, Any]]:
        """Return the buckets (open/high/low/close, points, latest source) of the last `limit` intervals, oldest first.

        Reads at most `limit` rollup rows through the primary key, whatever the store's age.
        """
        with self.engine.connect() as conn:
            return rollups.read_buckets(conn, symbol, interval, limit, utc_now())

    def backfill_rollups(self) -> bool:
        """Fold the next chunk of points stored before rollups existed; return True when none are left."""
        try:
            with self._writing() as conn:
                return rollups.backfill_step(conn, prices, meta_table, BACKFILL_CHUNK)
        except rollups.BackfillConflict:
            return False  # another process folded that chunk; the next call reads the new state

    def prune_prices(self, keep_days: float = 7.0, keep_minute_days: float = 30.0, *,
                     should_stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
        """Delete raw points older than `keep_days` and 1m buckets older than `keep_minute_days`.

        Deletes in short transactions (a few hours of data each) so writers are never held for
        long; 1h and 1d buckets are kept. Raw points wait while a rollup backfill still needs them.
        """
        now = utc_now()
        deleted = {"prices": 0, "rollups_1m": 0}
        with self.engine.connect() as conn:
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
                with self._writing() as conn:
                    gone = rollups.prune_before(conn, table, column, cutoff, step, where)
                if not gone:
                    break
                deleted[name] += gone
        return deleted

    # ------------------------------------------------------------ news

    def stored_news_seqs(self, urls: list[str]) -> dict[str, int | None]:
        """Return url -> seq for the URLs among `urls` that are stored (one query)."""
        if not urls:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(STORED_NEWS_SEQS, {"urls": urls}).all()
        return {row.url: row.seq for row in rows}

    def save_news(self, item: NewsItem, seq: int | None = None) -> bool:
        """Store a news item; return False when its URL was already stored."""
        try:
            self._write(insert(news).values(**_news_row(item, seq)))
        except IntegrityError:
            return False
        return True

    def recent_news(self, query: str | None = None, limit: int = 50, source: str | None = None) -> list[dict[str, Any]]:
        """Return stored news, newest first, optionally holding the words of `query` in title or description.

        Raises:
            SearchUnavailable: `query` was given and the database has no full-text index.
        """
        statement = select(news).order_by(news.c.published_at.desc()).limit(limit)
        if query:
            words = search_words(query)
            if not words:
                return []  # nothing searchable (only punctuation): nothing matches
            if not self.can_search:
                raise SearchUnavailable(f"no full-text index on {self.engine.dialect.name}")
            with self.engine.connect() as conn:
                by_date = scan_by_date(conn, words, limit)  # common words: stop after `limit` hits
            statement = statement.where(match_clause(self.engine.dialect.name, words, by_date=by_date))
        if source:
            statement = statement.where(func.lower(news.c.source) == source.lower())
        with self.engine.connect() as conn:
            rows = conn.execute(statement).mappings().all()
        out = []
        for row in rows:
            item = dict(row)
            for field in ("published_at", "ingested_at"):
                item[field] = format_utc(_aware(item[field]))  # type: ignore[arg-type]
            item.pop("id", None)
            out.append(item)
        return out

    # ------------------------------------------------------------ fear & greed, health, model stats

    def save_fear_greed(self, reading: FearGreedReading) -> None:
        """Store a Fear & Greed reading once per timestamp."""
        try:
            self._write(insert(fear_greed).values(ts=reading.timestamp, value=reading.value,
                                                  classification=reading.classification, source=reading.source))
        except IntegrityError:
            pass  # that day's reading is stored already

    def fear_greed_history(self, limit: int = 90) -> list[dict[str, Any]]:
        """Return stored Fear & Greed readings, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(fear_greed).order_by(fear_greed.c.ts.desc()).limit(limit)).mappings().all()
        return [{"timestamp": format_utc(_aware(r["ts"])), "value": r["value"],  # type: ignore[arg-type]
                 "classification": r["classification"], "source": r["source"]} for r in reversed(rows)]

    def save_source_event(self, name: str, category: str, status: str, error: str | None,
                          latency_ms: float | None) -> None:
        """Record a provider's status change."""
        self._write(insert(source_events).values(ts=utc_now(), name=name, category=category, status=status,
                                                 error=error, latency_ms=latency_ms))

    def load_model_stats(self) -> dict[str, dict[str, Any]]:
        """Return persisted model statistics by model id."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(model_stats)).all()
        return {r.model_id: json.loads(r.data) for r in rows}

    def save_model_stats(self, stats: dict[str, dict[str, Any]]) -> None:
        """Replace persisted model statistics."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(delete(model_stats))
            if stats:
                conn.execute(insert(model_stats), [{"model_id": k, "data": json.dumps(v)} for k, v in stats.items()])

    def close(self) -> None:
        """Finish pending journal writes (bounded), then release the connection pool."""
        if self._journal_thread is not None:
            self._journal_queue.put(None)
            self._journal_thread.join(timeout=10)
            self._journal_thread = None
        self.engine.dispose()


def _journal_row(envelope: Envelope) -> dict[str, Any]:
    return {"topic": envelope.topic, "seq": envelope.seq, "epoch": envelope.epoch, "key": envelope.key,
            "source": envelope.source, "match_text": envelope.match_text, "text": envelope.text}


def _news_row(item: NewsItem, seq: int | None) -> dict[str, Any]:
    return {"url": item.url, "title": item.title, "description": item.description, "source": item.source,
            "published_at": item.published_at, "image_url": item.image_url, "sentiment": item.sentiment,
            "sentiment_score": item.sentiment_score, "sentiment_model": item.sentiment_model, "seq": seq,
            "ingested_at": utc_now()}



