"""News search through the full-text index: words found, the index's query syntax never reachable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.clock import utc_now
from core.records import NewsItem
from core.store import Store
from testbed.harness import AppProcess, running_app
from testbed.services import PostgresServer, needs_postgres

TITLES = (
    "Bitcoin ETF approved by regulators",
    "Ethereum or Bitcoin: where the whales went",
    'Analyst says "buy" OR sell, nothing in between',
    "Whale wallets move 10,000 BTC",
)


def _item(i: int, title: str) -> NewsItem:
    return NewsItem(title=title, description=f"story {i}", url=f"https://search.example/{i}", source="Wire",
                    published_at=utc_now())


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("search")) as app:
        for title in TITLES:
            assert app.post_news(title=title).status_code == 201
        yield app


def _found(app: AppProcess, q: str) -> set[str]:
    reply = httpx.get(f"{app.http}/api/news", params={"q": q}, timeout=10)
    assert reply.status_code == 200, reply.text
    return {item["title"] for item in reply.json()["items"]}


def test_search_finds_a_word_in_any_case(app: AppProcess):
    assert _found(app, "BITCOIN") == {TITLES[0], TITLES[1]}


def test_search_treats_the_last_word_as_a_prefix(app: AppProcess):
    assert _found(app, "bitcoin et") == {TITLES[0]}


def test_search_words_form_a_phrase(app: AppProcess):
    assert _found(app, "whale wallets") == {TITLES[3]}


def test_search_operator_or_is_an_ordinary_word(app: AppProcess):
    """`bitcoin OR whale` would match three items as FTS syntax; as text it matches none."""
    assert _found(app, "bitcoin OR whale") == set()
    assert _found(app, '"buy" OR sell') == {TITLES[2]}


@pytest.mark.parametrize("q", ['"', "*", "-", '"unterminated', "NEAR(", "title:", "^", "()"])
def test_search_syntax_characters_are_answered_not_parsed(app: AppProcess, q: str):
    assert _found(app, q) == set()


def test_search_star_is_not_a_wildcard(app: AppProcess):
    assert _found(app, "whale*") == _found(app, "whale")


def test_search_matches_within_the_store_not_just_recent_memory(tmp_path: Path):
    store = Store(data_dir=tmp_path)
    try:
        for i in range(300):
            store.save_news(_item(i, f"routine market note {i}"))
        store.save_news(_item(999, "A rare halving remark"))
        found = store.recent_news("halving", limit=10)
        common = store.recent_news("routine", limit=5)
    finally:
        store.close()
    assert [n["title"] for n in found] == ["A rare halving remark"]
    assert len(common) == 5


@pytest.mark.postgres
@needs_postgres
def test_search_on_postgresql_uses_the_same_rules(postgres: PostgresServer, tmp_path: Path):
    store = Store(postgres.url, tmp_path)
    try:
        for i, title in enumerate(TITLES):
            store.save_news(_item(i, title))
        queries = ("bitcoin et", "bitcoin OR whale", '"', "whale*")
        results = {q: {n["title"] for n in store.recent_news(q)} for q in queries}
    finally:
        store.close()
    assert results == {"bitcoin et": {TITLES[0]}, "bitcoin OR whale": set(), '"': set(),
                       "whale*": {TITLES[1], TITLES[3]}}
