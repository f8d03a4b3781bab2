"""The store's database: one SQLAlchemy engine, SQLite's pragmas, the schema, the write lock and outage state.

SQLite (WAL) under DATA_DIR by default, any DATABASE_URL otherwise. Every table of the store is
declared on `metadata` by the module of its area; `Database.open()` creates what is missing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, Text, create_engine, delete, event, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.clock import utc_now

__all__ = ["SQLITE_SYNCHRONOUS", "Database", "StoreUnavailable", "aware", "meta_table", "metadata"]

logger = logging.getLogger(__name__)

metadata = MetaData()
meta_table = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text))

SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")


class StoreUnavailable(Exception):
    """The database could not be reached or written; the caller keeps serving from memory."""


def aware(moment: datetime | None) -> datetime | None:
    """Return `moment` with UTC attached: SQLite hands back naive datetimes even for timezone-aware columns."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"[:300]


class Database:
    """The engine every area of the store writes through, and whether it answered last time.

    Args:
        synchronous: SQLite's `PRAGMA synchronous`. `FULL` (the default) fsyncs the WAL at every
            commit, so an acknowledged item survives power loss; `NORMAL` fsyncs only at
            checkpoints: a crash of the process loses nothing, power loss the last commits (and
            their seqs would be handed out again). `bench/journal.py --http` measures the difference.
            PostgreSQL commits durably by default (`fsync` and `synchronous_commit` on).
    """

    def __init__(self, url: str | None, data_dir: Path, *, synchronous: str = "FULL") -> None:
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
        self.lock = threading.Lock()  # SQLite allows one writer; serialise ours instead of retrying
        self.last_check: datetime | None = None
        self.online = False
        self.last_error: str | None = None
        self._prepare: Callable[[Connection], None] = lambda _conn: None

    def open(self, prepare: Callable[[Connection], None]) -> None:
        """Create the schema (tables, then `prepare` in one transaction); a failure leaves the store offline."""
        self._prepare = prepare
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
            logger.error("store: cannot open %s: %s",
                         self.engine.url.render_as_string(hide_password=True), self.last_error)

    def _create_schema(self) -> None:
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            self._prepare(conn)

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Checked against SQLITE_SYNCHRONOUS in the constructor, so never anything but a keyword.
        cursor.execute(f"PRAGMA synchronous={self.synchronous}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    def ping(self, recheck: Callable[[], None]) -> bool:
        """Run a trivial query and take the write lock, then `recheck()`; record and return whether all worked."""
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
            recheck()
            self.online, self.last_error = True, None
        except SQLAlchemyError as exc:
            self.fail(exc)
        return self.online

    def fail(self, exc: SQLAlchemyError) -> str:
        """Record that the database failed a statement; return the reason as status shows it."""
        self.online = False
        self.last_error = _first_line(exc)
        return self.last_error

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """Yield one write transaction under our lock.

        Raises:
            StoreUnavailable: the database failed (it is marked offline).
            IntegrityError: passed on as it is: a duplicate is an answer, not an outage.
        """
        try:
            with self.lock, self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreUnavailable(self.fail(exc)) from exc

    def write(self, statement: Any) -> None:
        """Execute one statement in its own write transaction (failures as in `writing`)."""
        with self.writing() as conn:
            conn.execute(statement)
