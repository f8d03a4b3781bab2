"""A process keeps the news it receives: dedupe knows it at once, its database soon after."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from core.bus import Bus
from core.records import NewsItem
from core.store import Store
from desk.news import news_message
from desk.news_relay import ClusterNewsDesk
from testbed.harness import MS


def _item(i: int) -> NewsItem:
    return NewsItem(title=f"item {i}", description="d", url=f"https://relay.example/{i}", source="Wire",
                    published_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), sentiment="positive",
                    sentiment_score=0.5, sentiment_model="m")


async def test_a_received_item_is_a_duplicate_with_its_seq_and_is_stored(tmp_path: Path):
    store = Store(data_dir=tmp_path)
    desk = ClusterNewsDesk(Bus(journal=store), store, scorer=None)
    desk.attach(None, lambda: True)  # this process leads now; it received seq 7 from the one before
    keeping = asyncio.create_task(desk.keep_loop())
    try:
        received = replace(Bus().stamp("news", news_message(_item(1))), seq=7)
        desk.keep_received(received)
        [again] = await desk.ingest([_item(1)])
        for _ in range(100):
            if store.stored_news_seqs([_item(1).url]):
                break
            await asyncio.sleep(20 * MS)
    finally:
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)
    stored = store.recent_news()
    store.close()
    assert again.duplicate is True and again.seq == 7
    assert [(n["url"], n["seq"], n["sentiment_model"]) for n in stored] == [(_item(1).url, 7, "m")]
