"""News search through a full-text index: SQLite FTS5, PostgreSQL `to_tsvector`; never a scan of every row.

The user's text is never handed to the index's query language: it is cut into words (letters and
digits), and the words are searched as one phrase whose last word may be a prefix, so `bitcoin et`
finds "Bitcoin ETF" and `OR`, `*`, `"`, `NEAR` or `-` are ordinary words. Text with no word in
it matches nothing.

SQLite keeps the index in an external-content FTS5 table that triggers maintain, so every write
path (and rows written before the index existed, rebuilt once) is covered. PostgreSQL uses a GIN
expression index over the same expression the query uses.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import Connection, TextClause, text

__all__ = ["SearchUnavailable", "match_clause", "prepare_search", "scan_by_date", "search_words"]

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
