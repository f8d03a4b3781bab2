"""The news desk: an item is acknowledged only once durable, and a retry answers the original seq."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from core.bus import Bus, Envelope
from core.records import NewsItem
from core.store import Store
from desk.news import NewsDesk, NewsUnavailable, scored_by


def _item(i: int) -> NewsItem:
    return NewsItem(title=f"item {i}", description="d" * 2000, url=f"https://desk.example/{i}", source="Wire",
                    published_at=datetime.now(UTC))


def _cap_pages(store: Store) -> Any:
    """Cap the database at its current size (SQLite's max_page_count): the next journal row does not fit."""
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(store.engine, "connect", cap)
    store.engine.dispose()
    return cap


def _uncap(store: Store, cap: Any) -> None:
    event.remove(store.engine, "connect", cap)
    store.engine.dispose()


@pytest.fixture
def desk(tmp_path: Path):
    store = Store(data_dir=tmp_path)
    desk = NewsDesk(Bus(journal=store), store, scorer=None, retry_after_s=0)
    streamed: list[tuple[int, str]] = []
    desk.streamed = streamed  # type: ignore[attr-defined]  # what sockets would have seen, for the tests
    desk.bus.add_listener("news", lambda env: streamed.append((env.seq, env.text)))
    yield desk
    store.close()


async def test_ingest_retry_of_an_acknowledged_url_answers_the_original_seq(desk):
    [first] = await desk.ingest([_item(1)])
    desk._seen.clear()  # as after a restart: only the store remembers
    [again] = await desk.ingest([_item(1)])
    assert (first.seq, first.duplicate) == (1, False) and (again.seq, again.duplicate) == (1, True)
    assert len(desk.streamed) == 1


async def test_ingest_on_a_full_disk_is_unavailable_and_publishes_nothing(desk):
    cap = _cap_pages(desk.store)
    with pytest.raises(NewsUnavailable):
        await desk.ingest([_item(1)])
    _uncap(desk.store, cap)
    [retried] = await desk.ingest([_item(1)])
    assert desk.streamed == [(1, desk.streamed[0][1])] and retried.seq == 1 and desk.refused == 1


async def test_ingest_published_on_the_backplane_but_not_stored_is_stored_by_the_retry(desk):
    async def confirmed(_envelope: Envelope) -> None:
        return None  # Redis took it: the other processes stream it

    desk.bus.set_relay(lambda env: None, confirmed)
    cap = _cap_pages(desk.store)
    with pytest.raises(NewsUnavailable):
        await desk.ingest([_item(1)])
    _uncap(desk.store, cap)
    [retried] = await desk.ingest([_item(1)])
    assert [seq for seq, _ in desk.streamed] == [1] and retried.seq == 1
    assert desk.store.stored_news_seqs([_item(1).url]) == {_item(1).url: 1}


def test_scored_by_names_each_model_behind_a_score():
    assert scored_by("ensemble(embedded/minilm-finhead+ElKulako/cryptobert)") == [
        "embedded/minilm-finhead",
        "ElKulako/cryptobert",
    ]
    assert scored_by("lexicon") == ["lexicon"] and scored_by(None) == []
