"""RSS/Atom parsing and news de-duplication."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.config import SourcesSection
from core.records import NewsItem
from sources import NewsDeduper, UpstreamGarbage, canonical_url, feeds_from_urls, normalize_title, parse_feed
from tests.upstream import load_fixture


def item(title: str, url: str) -> NewsItem:
    return NewsItem(
        title=title, description="", url=url, source="Test", published_at=datetime(2025, 12, 8, tzinfo=UTC)
    )


def test_rss_media_content_image_and_html_stripped() -> None:
    items = parse_feed(load_fixture("rss_coindesk.xml"), source="CoinDesk")
    first = items[0]
    assert first.title == "Bitcoin Tops $43K as ETF Demand Returns" and first.source == "CoinDesk"
    assert (
        first.description
        == "Spot bitcoin ETFs drew $512 million on Friday, the most in a month & the price followed."
    )
    assert first.image_url == "https://www.coindesk.com/resizer/v2/btc-etf.jpg?auth=abc&width=1200"
    assert first.published_at == datetime(2025, 12, 8, 10, 15, tzinfo=UTC)


def test_rss_entry_without_title_is_skipped_and_recorded() -> None:
    rejects: list[str] = []
    items = parse_feed(load_fixture("rss_coindesk.xml"), source="CoinDesk", rejects=rejects)
    assert len(items) == 3 and rejects == ["a1b2c3d4-0003: no title"]


def test_rss_enclosure_image_preferred_over_inline_img() -> None:
    items = parse_feed(load_fixture("rss_cointelegraph.xml"), source="Cointelegraph")
    assert items[0].image_url == "https://images.cointelegraph.com/images/1200_btc-etf.jpg"
    assert items[1].image_url == "https://images.cointelegraph.com/images/240_sol-dex.jpg"  # first <img>


def test_rss_offset_date_normalised_to_utc_and_script_dropped() -> None:
    items = parse_feed(load_fixture("rss_cointelegraph.xml"), source="Cointelegraph")
    assert items[1].published_at == datetime(2025, 12, 8, 10, 15, tzinfo=UTC)
    assert items[1].description == "Decentralized exchanges on Solana processed record volume."


def test_atom_thumbnail_relative_links_and_feed_title_as_source() -> None:
    items = parse_feed(load_fixture("atom_feed.xml"), feed_url="http://127.0.0.1:1/feeds/bm.xml")
    assert [i.source for i in items] == ["Bitcoin Magazine", "Bitcoin Magazine"]
    assert items[0].title == "Lightning Network Capacity Reaches New High"
    assert items[0].image_url == "https://bitcoinmagazine.com/.image/lightning.jpg"
    assert items[0].published_at == datetime(2025, 12, 8, 10, 0, tzinfo=UTC)
    assert items[1].url == "https://bitcoinmagazine.com/business/miners-diversify-ai"
    assert items[1].image_url == "https://bitcoinmagazine.com/.image/miners-ai.jpg"


@pytest.mark.parametrize(
    "raw",
    [
        load_fixture("rss_truncated.xml"),
        load_fixture("html_error_page.html"),
        b"",
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Empty</title></channel></rss>',
    ],
    ids=["truncated", "html", "empty", "no_items"],
)
def test_rss_broken_or_empty_feed_raises_garbage(raw: bytes) -> None:
    with pytest.raises(UpstreamGarbage):
        parse_feed(raw, source="Decrypt")


def test_rss_complete_but_invalid_xml_is_parsed_leniently_and_noted() -> None:
    raw = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item><title>Fees & more</title>'
        b"<link>https://example.com/a</link><pubDate>Mon, 08 Dec 2025 10:00:00 +0000</pubDate></item>"
        b"</channel></rss>"
    )
    rejects: list[str] = []
    items = parse_feed(raw, source="T", rejects=rejects)
    assert [i.title for i in items] == ["Fees & more"] and rejects[0].startswith(
        "feed is not well-formed XML"
    )


def test_feeds_from_urls_names_known_publishers() -> None:
    feeds = feeds_from_urls(["https://cointelegraph.com/rss", " https://www.example.org/feed "])
    assert [(f.name, f.provider_name) for f in feeds] == [
        ("Cointelegraph", "cointelegraph"),
        ("example.org", "example_org"),
    ]


def test_feeds_from_urls_names_every_default_feed_by_its_publisher() -> None:
    feeds = feeds_from_urls(SourcesSection().news_feeds)
    assert [f.name for f in feeds] == ["CoinDesk", "Cointelegraph", "Decrypt", "The Block", "Bitcoin Magazine",
                                       "CryptoSlate"]


def test_feeds_from_urls_rejects_non_http() -> None:
    with pytest.raises(ValueError, match="not an http"):
        feeds_from_urls(["ftp://example.org/feed"])


@pytest.mark.parametrize(
    "variant",
    [
        "https://www.coindesk.com/markets/a/?utm_source=rss&utm_medium=feed#comments",
        "http://coindesk.com/markets/a",
        "https://COINDESK.com:443/markets/a/",
        "https://coindesk.com/markets/a?fbclid=xyz",
    ],
)
def test_canonical_url_strips_tracking_fragment_slash_and_www(variant: str) -> None:
    assert canonical_url(variant) == "https://coindesk.com/markets/a"


def test_canonical_url_keeps_meaningful_query_sorted() -> None:
    assert canonical_url("https://x.com/p?b=2&utm_campaign=z&a=1") == "https://x.com/p?a=1&b=2"


def test_normalize_title_ignores_case_punctuation_accents() -> None:
    assert (
        normalize_title("  Bitcoin Tops $43K — as ETF Démand Returns! ")
        == "bitcoin tops 43k as etf demand returns"
    )


def test_deduper_drops_same_url_and_near_identical_title() -> None:
    dedupe = NewsDeduper()
    fresh = dedupe.filter_new(
        [
            item("Bitcoin Tops $43K as ETF Demand Returns", "https://coindesk.com/a"),
            item("Other story", "https://coindesk.com/a/?utm_source=rss"),
            item("Bitcoin tops $43K as ETF demand returns!", "https://cointelegraph.com/b"),
            item("Bitcoin Top $43K as ETF Demand Return", "https://decrypt.co/c"),
            item("Ether slides below $2,200 as ETF outflows grow", "https://decrypt.co/d"),
        ]
    )
    assert [i.url for i in fresh] == ["https://coindesk.com/a", "https://decrypt.co/d"]


def test_deduper_keeps_distinct_stories_with_similar_words() -> None:
    dedupe = NewsDeduper()
    fresh = dedupe.filter_new(
        [
            item("Bitcoin rises 2% on ETF inflows", "https://a.com/1"),
            item("Ether rises 2% on ETF inflows", "https://a.com/2"),
        ]
    )
    assert len(fresh) == 2


def test_deduper_mark_seen_suppresses_known_urls() -> None:
    dedupe = NewsDeduper()
    dedupe.mark_seen(urls=["https://coindesk.com/a"])
    assert dedupe.filter_new([item("Anything", "https://www.coindesk.com/a/")]) == []
