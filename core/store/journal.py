"""The bus journal: the recent envelopes of each journaled topic, so news `seq` and `epoch` survive a restart.

News is committed together with its journal entry (`commit_news`), before any socket sees it; other
topics are appended on a journal thread (`append`) so a slow database never stalls streaming. A
journal that cannot write shows in `error` (and `system_status.database`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from sqlalchemy import Column, Connection, Integer, String, Table, Text, delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.bus import Envelope
from core.records import NewsItem
from core.store.database import Database, StoreUnavailable, meta_table, metadata
from core.store.news import STORED_NEWS_SEQS, news, news_row
from core.vocabulary import JOURNAL_KEEP

__all__ = ["JOURNAL_QUEUE", "Journal", "bus_log"]

logger = logging.getLogger(__name__)

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

JOURNAL_QUEUE = 10_000  # envelopes waiting for the journal thread; past it they are refused, loudly


class Journal:
    """Journal rows of the bus's topics (the bus's Journal protocol), and the news they name."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: queue.Queue[Envelope | None] = queue.Queue(JOURNAL_QUEUE)
        self._thread: threading.Thread | None = None
        self._failure: str | None = None  # why the last journal write failed (None: it worked)
        self._crash: str | None = None  # why the journal thread died, until it runs again

    def load_topic(self, topic: str, limit: int) -> tuple[str | None, int, list[Envelope]]:
        """Return (epoch, last seq, last `limit` envelopes) of a journaled topic."""
        try:
            with self._db.engine.connect() as conn:
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
    def error(self) -> str | None:
        """Return why the journal cannot write now (a failed commit, a full queue, a dead thread), or None."""
        if self._crash is not None:
            return self._crash
        return self._failure

    def _note_failure(self, reason: str) -> None:
        self._failure = f"journal: {reason}"[:300]

    def recheck(self) -> None:
        """After a failure, write (and delete) a journal-sized row: a ping that needs no new page hides a full disk."""
        if self._failure is None:
            return
        with self._db.lock, self._db.engine.begin() as conn:
            conn.execute(insert(meta_table).values(key="__journal_probe__", value="x" * 8192))
            conn.execute(delete(meta_table).where(meta_table.c.key == "__journal_probe__"))
        self._failure = None

    def commit_news(self, item: NewsItem, envelope: Envelope) -> None:
        """Store a news item and journal its envelope in one transaction (before anyone sees it).

        Raises:
            StoreUnavailable: nothing was written (database locked, disk full, unreachable); also
                when the item's URL is stored already under another seq, or the seq is journaled
                already under the same epoch (another writer: refuse rather than name two items).
        """
        try:
            try:
                with self._db.lock, self._db.engine.begin() as conn:  # the usual case: two inserts
                    conn.execute(insert(bus_log).values(**_journal_row(envelope)))
                    conn.execute(insert(news).values(**news_row(item, envelope.seq)))
                    _trim(conn, envelope)
            except IntegrityError:
                self._commit_news_over_conflict(item, envelope)
        except IntegrityError as exc:
            self._note_failure(f"seq {envelope.seq} of {envelope.topic} is journaled already")
            raise StoreUnavailable(f"journal conflict at {envelope.topic} seq {envelope.seq}") from exc
        except SQLAlchemyError as exc:
            reason = self._db.fail(exc)
            self._note_failure(reason)
            raise StoreUnavailable(reason) from exc
        self._failure = None

    def _commit_news_over_conflict(self, item: NewsItem, envelope: Envelope) -> None:
        with self._db.lock, self._db.engine.begin() as conn:
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
                conn.execute(insert(news).values(**news_row(item, envelope.seq)))
            elif stored.seq != envelope.seq:
                raise StoreUnavailable(f"{item.url} is stored already under seq {stored.seq}")
            _trim(conn, envelope)

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
        with self._db.writing() as conn:
            stored = {row.url: row.seq for row in conn.execute(
                STORED_NEWS_SEQS, {"urls": [item.url for item, _ in received]})}
            for item, envelope in received:
                where = (bus_log.c.topic == envelope.topic) & (bus_log.c.seq == envelope.seq)
                conn.execute(delete(bus_log).where(where & (bus_log.c.epoch != envelope.epoch)))
                if conn.execute(select(bus_log.c.seq).where(where)).first() is None:
                    conn.execute(insert(bus_log).values(**_journal_row(envelope)))
                if item.url not in stored:
                    conn.execute(insert(news).values(**news_row(item, envelope.seq)))
                    stored[item.url] = envelope.seq
                    added += 1
                elif stored[item.url] != envelope.seq:
                    logger.warning("store: %s is stored under seq %s, received as seq %s; kept as stored",
                                   item.url, stored[item.url], envelope.seq)
                _trim(conn, envelope)
        return added

    def append(self, envelope: Envelope) -> None:
        """Journal one envelope for a topic published without `commit_news`.

        Called on an event loop (the bus publishing), the write happens on a journal thread, in
        order, so a locked or slow database never stalls streaming; `close()` waits for it. The
        queue is bounded: past `JOURNAL_QUEUE` waiting envelopes the journal is reported failing.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._append_now(envelope)
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._write_queued, name="store-journal", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(envelope)
        except queue.Full:
            logger.error("store: journal queue full (%d); %s seq %s not journaled", JOURNAL_QUEUE,
                         envelope.topic, envelope.seq)
            self._note_failure(f"queue full ({JOURNAL_QUEUE} envelopes waiting)")

    def _write_queued(self) -> None:
        self._crash = None
        try:
            while (envelope := self._queue.get()) is not None:
                self._append_now(envelope)
        except Exception as exc:
            # Loud, never silent: status shows it until the next append starts a new thread.
            logger.exception("store: journal thread died; %d envelopes wait", self._queue.qsize())
            self._crash = f"journal thread died: {type(exc).__name__}: {exc}"[:300]

    def _append_now(self, envelope: Envelope) -> None:
        try:
            self._db.write(insert(bus_log).values(**_journal_row(envelope)))
            if envelope.seq % 500 == 0:
                with self._db.writing() as conn:
                    _trim(conn, envelope)
            self._failure = None
        except StoreUnavailable as exc:
            logger.error("store: journal append failed, seq %s of %s kept in memory only: %s",
                         envelope.seq, envelope.topic, exc)
            self._note_failure(str(exc))
        except IntegrityError:
            # A shared database already has this seq (another process journaled it as leader).
            logger.warning("store: journal already holds %s seq %s; kept", envelope.topic, envelope.seq)

    def close(self) -> None:
        """Finish pending journal writes (bounded)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None


def _trim(conn: Connection, envelope: Envelope) -> None:
    """Every 500th seq, delete the topic's rows older than the JOURNAL_KEEP newest."""
    if envelope.seq % 500 == 0:
        conn.execute(delete(bus_log).where(
            (bus_log.c.topic == envelope.topic) & (bus_log.c.seq <= envelope.seq - JOURNAL_KEEP)))


def _journal_row(envelope: Envelope) -> dict[str, Any]:
    return {"topic": envelope.topic, "seq": envelope.seq, "epoch": envelope.epoch, "key": envelope.key,
            "source": envelope.source, "match_text": envelope.match_text, "text": envelope.text}
