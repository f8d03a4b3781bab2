"""News items, unique by URL with their scores and seq, and their search through a full-text index.

Search never scans every row: SQLite FTS5, PostgreSQL `to_tsvector`. The user's text is never
handed to the index's query language: it is cut into words (letters and digits), and the words are
searched as one phrase whose last word may be a prefix, so `bitcoin et` finds "Bitcoin ETF" and
`OR`, `*`, `"`, `NEAR` or `-` are ordinary words. Text with no word in it matches nothing.

SQLite keeps the index in an external-content FTS5 table that triggers maintain, so every write
path (and rows written before the index existed, rebuilt once) is covered. PostgreSQL uses a GIN
expression index over the same expression the query uses.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    TextClause,
    bindparam,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from core.clock import format_utc, utc_now
from core.records import NewsItem
from core.store.database import Database, aware, metadata

__all__ = ["STORED_NEWS_SEQS", "News", "SearchUnavailable", "news", "news_row"]

logger = logging.getLogger(__name__)

MAX_WORDS = 16
WORD = re.compile(r"[^\W_]+")  # letters and digits, as FTS5's unicode61 tokenizer splits words

_SQLITE_DDL = (
    "CREATE VIRTUAL TABLE news_fts USING fts5(title, description, content='news', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER news_fts_insert AFTER INSERT ON news BEGIN "
    "INSERT INTO news_fts(rowid, title, description) VALUES (new.id, new.title, new.description); END",
    "CREATE TRIGGER news_fts_delete AFTER DELETE ON news BEGIN "
    "INSERT INTO news_fts(news_fts, rowid, title, description) "
    "VALUES ('delete', old.id, old.title, old.description); END",
    "CREATE TRIGGER news_fts_update AFTER UPDATE OF title, description ON news BEGIN "
    "INSERT INTO news_fts(news_fts, rowid, title, description) "
    "VALUES ('delete', old.id, old.title, old.description); "
    "INSERT INTO news_fts(rowid, title, description) VALUES (new.id, new.title, new.description); END",
    "INSERT INTO news_fts(news_fts) VALUES ('rebuild')",  # rows stored before the index existed
)
_POSTGRES_DOCUMENT = "to_tsvector('simple', title || ' ' || description)"

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

# Built once: `in_(urls)` built per call made about ten objects in reference cycles each time (an
# expanding BindParameter and its clone sets), garbage only the collector could free.
STORED_NEWS_SEQS = select(news.c.url, news.c.seq).where(news.c.url.in_(bindparam("urls", expanding=True)))


class SearchUnavailable(Exception):
    """This database offers no full-text index (SQLite built without FTS5)."""


def prepare_search(conn: Connection) -> bool:
    """Create the index where it is missing; return whether searching is possible."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        exists = conn.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'news_fts'")).first()
        if exists is None:
            if not conn.execute(text("SELECT sqlite_compileoption_used('ENABLE_FTS5')")).scalar():
                logger.error("news search: this SQLite has no FTS5; /api/news?q= answers 503")
                return False
            for statement in _SQLITE_DDL:
                conn.execute(text(statement))
        return True
    if dialect == "postgresql":
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_news_search ON news USING gin ({_POSTGRES_DOCUMENT})"))
        return True
    logger.error("news search: no full-text index for %s; /api/news?q= answers 503", dialect)
    return False


def search_words(query: str) -> list[str]:
    """Return the words of a user's search text, lower-cased, at most MAX_WORDS."""
    return WORD.findall(query.lower())[:MAX_WORDS]


def scan_by_date(conn: Connection, words: list[str], limit: int) -> bool:
    """Return whether walking news newest-first beats sorting every match (SQLite; PostgreSQL's planner decides).

    Walking visits about `limit * rows / matches` rows, sorting visits `matches`: choosing the
    smaller keeps a search under `sqrt(limit * rows)` row visits however common its words are.
    """
    if conn.dialect.name != "sqlite":
        return False
    phrase = '"' + " ".join(words) + '"*'
    matches = conn.execute(text("SELECT count(*) FROM news_fts WHERE news_fts MATCH :phrase"), {"phrase": phrase}
                           ).scalar() or 0
    rows = conn.execute(text("SELECT max(id) FROM news")).scalar() or 0
    return bool(matches * matches > limit * rows)


def match_clause(dialect: str, words: list[str], *, by_date: bool = False) -> TextClause:
    """Return a WHERE clause matching news rows that hold `words` as a phrase (last word a prefix).

    `by_date` (SQLite) makes the query walk news newest-first instead of looking every match up.

    Raises:
        SearchUnavailable: the dialect has no full-text index here.
    """
    # Words hold letters and digits only, so quoting them cannot be escaped from.
    if dialect == "sqlite":
        phrase = '"' + " ".join(words) + '"*'
        # SQLite's unary `+` keeps the planner off the id lookup, so it walks ix_news_published_at.
        column = "+news.id" if by_date else "news.id"
        return text(f"{column} IN (SELECT rowid FROM news_fts WHERE news_fts MATCH :phrase)").bindparams(phrase=phrase)
    if dialect == "postgresql":
        terms = [f"'{w}'" for w in words]
        terms[-1] += ":*"
        return text("to_tsvector('simple', news.title || ' ' || news.description) @@ to_tsquery('simple', :phrase)"
                    ).bindparams(phrase=" <-> ".join(terms))
    raise SearchUnavailable(f"no full-text index for {dialect}")



def news_row(item: NewsItem, seq: int | None) -> dict[str, Any]:
    """Return the `news` row of an item stored now under `seq`."""
    return {"url": item.url, "title": item.title, "description": item.description, "source": item.source,
            "published_at": item.published_at, "image_url": item.image_url, "sentiment": item.sentiment,
            "sentiment_score": item.sentiment_score, "sentiment_model": item.sentiment_model, "seq": seq,
            "ingested_at": utc_now()}


class News:
    """Stored news: saving without the journal, looking URLs up, and the newest items or a search."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.can_search = False

    def prepare(self, conn: Connection) -> None:
        """Create the full-text index where it is missing (in the schema's transaction)."""
        self.can_search = prepare_search(conn)

    def stored_seqs(self, urls: list[str]) -> dict[str, int | None]:
        """Return url -> seq for the URLs among `urls` that are stored (one query)."""
        if not urls:
            return {}
        with self._db.engine.connect() as conn:
            rows = conn.execute(STORED_NEWS_SEQS, {"urls": urls}).all()
        return {row.url: row.seq for row in rows}

    def save(self, item: NewsItem, seq: int | None = None) -> bool:
        """Store a news item; return False when its URL was already stored."""
        try:
            self._db.write(insert(news).values(**news_row(item, seq)))
        except IntegrityError:
            return False
        return True

    def recent(self, query: str | None = None, limit: int = 50, source: str | None = None) -> list[dict[str, Any]]:
        """Return stored news, newest first, optionally holding the words of `query` in title or description.

        Raises:
            SearchUnavailable: `query` was given and the database has no full-text index.
        """
        engine = self._db.engine
        statement = select(news).order_by(news.c.published_at.desc()).limit(limit)
        if query:
            words = search_words(query)
            if not words:
                return []  # nothing searchable (only punctuation): nothing matches
            if not self.can_search:
                raise SearchUnavailable(f"no full-text index on {engine.dialect.name}")
            with engine.connect() as conn:
                by_date = scan_by_date(conn, words, limit)  # common words: stop after `limit` hits
            statement = statement.where(match_clause(engine.dialect.name, words, by_date=by_date))
        if source:
            statement = statement.where(func.lower(news.c.source) == source.lower())
        with engine.connect() as conn:
            rows = conn.execute(statement).mappings().all()
        out = []
        for row in rows:
            item = dict(row)
            for field in ("published_at", "ingested_at"):
                item[field] = format_utc(aware(item[field]))  # type: ignore[arg-type]
            item.pop("id", None)
            out.append(item)
        return out
