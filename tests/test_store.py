"""The store's news journal: one transaction with the item, failures that show, a bounded journal thread."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

import core.store.journal
from core.bus import Envelope
from core.records import NewsItem, PriceQuote
from core.store import Store, StoreUnavailable
from testbed.harness import MS


def _item(i: int) -> NewsItem:
    return NewsItem(title=f"item {i}", description="d" * 400, url=f"https://store.example/{i}", source="Wire",
                    published_at=datetime.now(UTC))


def _envelope(seq: int, epoch: str = "e1") -> Envelope:
    return Envelope(topic="news", seq=seq, epoch=epoch, text=f'{{"seq":{seq}}}')


def _cap_pages(store: Store) -> Callable[[Any, Any], None]:
    """Cap the database file at its size plus two pages (SQLite's max_page_count), as a full disk would."""
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    assert pages is not None

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages + 2}")

    event.listen(store.engine, "connect", cap)
    store.engine.dispose()  # new connections pick the pragma up
    return cap


def _fill(store: Store) -> int:
    """Commit items until the capped database refuses one; return the seq that failed."""
    for seq in range(1, 5000):
        try:
            store.commit_news(_item(seq), _envelope(seq))
        except StoreUnavailable:
            return seq
    raise AssertionError("the capped database never filled up")


@pytest.fixture
def store(tmp_path: Path):
    store = Store(data_dir=tmp_path)
    yield store
    store.close()


def test_commit_news_stores_the_item_and_its_journal_entry_together(store):
    store.commit_news(_item(1), _envelope(1))
    assert store.stored_news_seqs([_item(1).url, "https://store.example/none"]) == {_item(1).url: 1}
    assert store.load_topic("news", 10)[1] == 1


def test_commit_news_on_a_full_disk_writes_nothing_and_reports_the_journal(store):
    _cap_pages(store)
    failed = _fill(store)
    assert store.stored_news_seqs([_item(failed).url]) == {}
    assert store.load_topic("news", 10)[1] == failed - 1
    assert "full" in (store.journal_error or "")


def test_ping_clears_the_journal_error_only_once_a_journal_write_fits(store):
    cap = _cap_pages(store)
    _fill(store)
    store.ping()
    assert store.journal_error is not None  # the tiny ping write still fits; a journal row does not
    event.remove(store.engine, "connect", cap)
    store.engine.dispose()
    assert store.ping() and store.journal_error is None


async def test_journal_thread_death_is_logged_and_reported(store, monkeypatch, caplog):
    def explode(_envelope: Envelope) -> None:
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr(store._journal, "_append_now", explode)
    store.append(_envelope(1))
    thread = store._journal._thread
    await asyncio.to_thread(thread.join, 5)
    assert store.journal_error.startswith("journal thread died: RuntimeError")
    assert "journal thread died" in caplog.text


async def test_journal_queue_is_bounded_and_overflow_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(core.store.journal, "JOURNAL_QUEUE", 3)
    store = Store(data_dir=tmp_path)
    release = threading.Event()
    monkeypatch.setattr(store._journal, "_append_now", lambda _env: release.wait(5000 * MS))
    try:
        for seq in range(1, 7):
            store.append(_envelope(seq))
        assert "queue full" in (store.journal_error or "")
    finally:
        release.set()
        store.close()


def _cyclic_garbage_of(work: Callable[[int], object], times: int = 20) -> list[str]:
    """Run `work` `times` times and return the type names of what only the collector could free."""
    work(-1)  # first use: SQLAlchemy compiles and caches the statement
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for i in range(times):
            work(i)
        gc.collect()
        return sorted({type(o).__qualname__ for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_saving_prices_and_looking_up_news_leave_no_reference_cycles(tmp_path: Path) -> None:
    # Every price tick and every news post does these; cyclic garbage from them piles up in the
    # old generation until a full collection stops the event loop to free it.
    store = Store(data_dir=tmp_path)
    now = datetime.now(UTC)
    try:
        assert _cyclic_garbage_of(lambda i: store.save_quotes(
            [PriceQuote("BTC", 100.0 + i, "test", now), PriceQuote("ETH", 10.0 + i, "test", now)])) == []
        assert _cyclic_garbage_of(lambda i: store.stored_news_seqs([f"https://news.example/{i}", "x"])) == []
    finally:
        store.close()


def test_sqlite_fsyncs_every_commit_by_default(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_keep_news_stores_received_items_once_under_their_seq(store):
    received = [(_item(1), _envelope(1)), (_item(2), _envelope(2))]
    assert store.keep_news(received) == 2
    assert store.keep_news(received) == 0  # delivered twice: nothing more
    assert store.stored_news_seqs([_item(1).url, _item(2).url]) == {_item(1).url: 1, _item(2).url: 2}
    assert [env.seq for env in store.load_topic("news", 10)[2]] == [1, 2]


def test_commit_news_of_an_envelope_kept_already_succeeds(store):
    """A shared database: a follower kept the item before its leader committed it."""
    store.keep_news([(_item(1), _envelope(1))])
    store.commit_news(_item(1), _envelope(1))
    assert store.stored_news_seqs([_item(1).url]) == {_item(1).url: 1}
    with pytest.raises(StoreUnavailable):
        store.commit_news(_item(2), Envelope(topic="news", seq=1, epoch="e1", text='{"another":1}'))


def test_package_exports_exist():
    assert all(hasattr(core.store, name) for name in core.store.__all__)
