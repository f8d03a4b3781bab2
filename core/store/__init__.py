"""Persistence of the app's history through SQLAlchemy, one module per area behind the `Store` facade.

- `database.py`: the engine (SQLite in WAL mode under DATA_DIR, or DATABASE_URL), the schema, the
  write lock and whether the database answered.
- `journal.py`: the bus journal that lets news `seq`/`epoch` survive a restart; news is committed
  together with its journal entry (`commit_news`) before any socket sees it.
- `prices.py` and `rollups.py`: the price time series, answered from rollups kept on write.
- `news.py`: news items, unique by URL, and their full-text search.
- `stats.py`: Fear & Greed history, provider health events, model statistics.

Calls are synchronous; async callers run every one of them in a thread (`asyncio.to_thread`).
A request's work does not grow with the store's age: history reads rollups, search an index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast, overload

from sqlalchemy import Connection, Engine

from core.bus import Envelope
from core.records import FearGreedReading, NewsItem, PriceQuote
from core.store.database import Database, StoreUnavailable
from core.store.journal import Journal
from core.store.news import News, SearchUnavailable
from core.store.prices import Prices
from core.store.stats import Stats

__all__ = ["SearchUnavailable", "Store", "StoreUnavailable"]

T = TypeVar("T")


class _DatabaseAttribute(Generic[T]):
    """A Store attribute that reads (and writes) the Database's attribute of the same name."""

    def __set_name__(self, owner: type[Store], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, store: None, owner: type[Store]) -> _DatabaseAttribute[T]: ...

    @overload
    def __get__(self, store: Store, owner: type[Store]) -> T: ...

    def __get__(self, store: Store | None, owner: type[Store]) -> T | _DatabaseAttribute[T]:
        if store is None:
            return self
        return cast(T, getattr(store._db, self._name))

    def __set__(self, store: Store, value: T) -> None:
        setattr(store._db, self._name, value)


class Store:
    """The app's database. `url=None` means SQLite at `<data_dir>/hub.sqlite3` in WAL mode.

    Args:
        synchronous: SQLite's `PRAGMA synchronous`: `FULL` (the default) fsyncs every commit,
            `NORMAL` only at checkpoints (`Database` says what each risks).
    """

    engine = _DatabaseAttribute[Engine]()
    url = _DatabaseAttribute[str]()  # password included
    is_sqlite = _DatabaseAttribute[bool]()
    synchronous = _DatabaseAttribute[str]()  # settable: connections opened later use the new value
    online = _DatabaseAttribute[bool]()  # whether the database answered the last statement or ping
    last_error = _DatabaseAttribute[str | None]()  # why it failed last; None while it answers
    last_check = _DatabaseAttribute[datetime | None]()  # when `ping()` last ran

    def __init__(self, url: str | None = None, data_dir: Path = Path("data"), *, synchronous: str = "FULL") -> None:
        self._db = Database(url, data_dir, synchronous=synchronous)
        self._journal = Journal(self._db)
        self._news = News(self._db)
        self._prices = Prices(self._db)
        self._stats = Stats(self._db)
        self._db.open(self._prepare)

    def _prepare(self, conn: Connection) -> None:
        self._news.prepare(conn)
        self._prices.prepare(conn)

    # ------------------------------------------------------------ the database

    @property
    def backend_name(self) -> str:
        """Return the database's kind as SQLAlchemy names it: `sqlite`, `postgresql`, ..."""
        return self._db.engine.url.get_backend_name()

    def ping(self) -> bool:
        """Run a trivial query (and a journal-sized write after a journal failure); return whether it answered."""
        return self._db.ping(self._journal.recheck)

    def close(self) -> None:
        """Finish pending journal writes (bounded), then release the connection pool."""
        self._journal.close()
        self._db.engine.dispose()

    # ------------------------------------------------------------ bus journal (the bus's Journal protocol)

    def load_topic(self, topic: str, limit: int) -> tuple[str | None, int, list[Envelope]]:
        """Return (epoch, last seq, last `limit` envelopes) of a journaled topic."""
        return self._journal.load_topic(topic, limit)

    def append(self, envelope: Envelope) -> None:
        """Journal one envelope, on the journal thread when called on an event loop."""
        self._journal.append(envelope)

    @property
    def journal_error(self) -> str | None:
        """Return why the journal cannot write now, or None."""
        return self._journal.error

    def commit_news(self, item: NewsItem, envelope: Envelope) -> None:
        """Store a news item and journal its envelope in one transaction (raises StoreUnavailable)."""
        self._journal.commit_news(item, envelope)

    def keep_news(self, received: list[tuple[NewsItem, Envelope]]) -> int:
        """Store and journal news another process published; return how many were new here."""
        return self._journal.keep_news(received)

    # ------------------------------------------------------------ news

    def stored_news_seqs(self, urls: list[str]) -> dict[str, int | None]:
        """Return url -> seq for the URLs among `urls` that are stored."""
        return self._news.stored_seqs(urls)

    def save_news(self, item: NewsItem, seq: int | None = None) -> bool:
        """Store a news item without journaling it; return False when its URL was already stored."""
        return self._news.save(item, seq)

    def recent_news(self, query: str | None = None, limit: int = 50, source: str | None = None) -> list[dict[str, Any]]:
        """Return stored news, newest first, optionally matching `query` (raises SearchUnavailable)."""
        return self._news.recent(query, limit, source)

    # ------------------------------------------------------------ prices

    def save_quotes(self, quotes: Iterable[PriceQuote]) -> None:
        """Append price points and fold them into the rollups, in one transaction."""
        self._prices.save(quotes)

    def price_history(self, symbol: str, interval: str = "1m", limit: int = 500) -> list[dict[str, Any]]:
        """Return the buckets of the last `limit` intervals, oldest first."""
        return self._prices.history(symbol, interval, limit)

    def backfill_rollups(self) -> bool:
        """Fold the next chunk of points stored before rollups existed; return True when none are left."""
        return self._prices.backfill()

    def prune_prices(self, keep_days: float = 7.0, keep_minute_days: float = 30.0, *,
                     should_stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
        """Delete raw points and 1m buckets past their retention, in short transactions."""
        return self._prices.prune(keep_days, keep_minute_days, should_stop=should_stop)

    # ------------------------------------------------------------ fear & greed, health, model stats

    def save_fear_greed(self, reading: FearGreedReading) -> None:
        """Store a Fear & Greed reading once per timestamp."""
        self._stats.save_fear_greed(reading)

    def fear_greed_history(self, limit: int = 90) -> list[dict[str, Any]]:
        """Return stored Fear & Greed readings, oldest first."""
        return self._stats.fear_greed_history(limit)

    def save_source_event(self, name: str, category: str, status: str, error: str | None,
                          latency_ms: float | None) -> None:
        """Record a provider's status change."""
        self._stats.save_source_event(name, category, status, error, latency_ms)

    def load_model_stats(self) -> dict[str, dict[str, Any]]:
        """Return persisted model statistics by model id."""
        return self._stats.load_model_stats()

    def save_model_stats(self, stats: dict[str, dict[str, Any]]) -> None:
        """Replace persisted model statistics."""
        self._stats.save_model_stats(stats)
