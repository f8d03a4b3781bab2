"""RSS/Atom news feeds via feedparser, with conditional GET.

One `RssProvider` per feed, so each feed has its own health, breaker and validators.
`parse_feed` is pure: bytes in, `NewsItem`s out (HTML stripped, UTC dates, image found in
media:content, media:thumbnail, an image enclosure, or the first <img> of the content).
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from html.parser import HTMLParser
from typing import Any, Unpack
from urllib.parse import urljoin, urlsplit

import feedparser

from core.records import NewsItem

from .errors import UpstreamGarbage
from .http import UpstreamHttp
from .pool import Provider, ProviderOptions, ProviderSpec

__all__ = [
    "Feed",
    "RssProvider",
    "feeds_from_urls",
    "parse_feed",
    "strip_html",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feed:
    """A news feed: the display name used as `NewsItem.source` and its URL."""

    name: str
    url: str

    @property
    def provider_name(self) -> str:
        """A lower-case id for logs and health (`coindesk`, `the_block`)."""
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_") or "feed"


# Publishers by host (without `www.`), so a feed of a known site, default (`NEWS_FEEDS`) or not,
# carries its proper name.
_PUBLISHERS: dict[str, str] = {
    "coindesk.com": "CoinDesk",
    "cointelegraph.com": "Cointelegraph",
    "decrypt.co": "Decrypt",
    "theblock.co": "The Block",
    "bitcoinmagazine.com": "Bitcoin Magazine",
    "cryptoslate.com": "CryptoSlate",
}

MAX_DESCRIPTION_CHARS = 1000


def feeds_from_urls(urls: Iterable[str]) -> tuple[Feed, ...]:
    """Name each feed URL by its publisher (known hosts) or by its host name."""
    feeds: list[Feed] = []
    for url in urls:
        url = url.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"NEWS_FEEDS entry {url!r} is not an http(s) URL")
        host = parts.hostname.lower().removeprefix("www.")
        feeds.append(Feed(_PUBLISHERS.get(host, host), url))
    return tuple(feeds)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.first_img: str | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "img" and self.first_img is None:
            self.first_img = dict(attrs).get("src")
        elif tag in ("p", "br", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _extract(html: str) -> tuple[str, str | None]:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = " ".join("".join(parser.parts).split())
    return unescape(text), parser.first_img


def strip_html(html: str) -> str:
    """Return the visible text of an HTML fragment, whitespace collapsed."""
    return _extract(html)[0]


def parse_feed(
    raw: bytes,
    *,
    source: str | None = None,
    feed_url: str | None = None,
    rejects: list[str] | None = None,
) -> list[NewsItem]:
    """Parse an RSS or Atom document into news items.

    Args:
        raw: the document bytes.
        source: the publisher name for `NewsItem.source`; default the feed's own title.
        feed_url: base for relative links when the feed does not name its site.
        rejects: receives a reason for every entry skipped (no title, link or date).

    Raises:
        UpstreamGarbage: HTML instead of a feed, a truncated or unparseable document, or a
            feed without one usable entry.
    """
    rejects = rejects if rejects is not None else []
    head = raw.lstrip()[:200].lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise UpstreamGarbage(f"{source or 'feed'}: expected RSS/Atom, got an HTML page")
    parsed = feedparser.parse(raw, sanitize_html=False, resolve_relative_uris=False)
    if parsed.get("bozo") and _is_fatal(raw, parsed.get("bozo_exception")):
        raise UpstreamGarbage(f"{source or 'feed'}: not a well-formed feed ({parsed.get('bozo_exception')})")
    entries = parsed.get("entries") or []
    if parsed.get("bozo") and entries:
        # feedparser's lenient mode recovered a complete but slightly invalid document (an
        # unescaped `&` is common); keep what validates below and say so in health.
        rejects.append(f"feed is not well-formed XML, parsed leniently: {parsed.get('bozo_exception')}")
    channel = parsed.get("feed", {})
    name = source or _text(channel.get("title")) or urlsplit(feed_url or "").hostname or "feed"
    # Relative links are relative to the site (the channel's link), not to where the feed is served.
    site = channel.get("link")
    base = site if isinstance(site, str) and site.startswith(("http://", "https://")) else feed_url
    items: list[NewsItem] = []
    for entry in entries:
        item = _item(entry, name, base, rejects)
        if item is not None:
            items.append(item)
    if not items:
        if not entries:
            raise UpstreamGarbage(f"{name}: feed has no entries (expected at least one item)")
        raise UpstreamGarbage(f"{name}: 0 of {len(entries)} entries usable ({'; '.join(rejects[:3])})")
    return items


def _is_fatal(raw: bytes, error: Any) -> bool:
    if error is None:
        return False
    # Encoding mismatches are harmless: feedparser decoded the document anyway.
    if type(error).__name__ in ("CharacterEncodingOverride", "CharacterEncodingUnknown", "NonXMLContentType"):
        return False
    # A document cut off before its closing tag was truncated in transit: nothing in it can be
    # trusted to be complete, so we wait for the next poll rather than publish half of it.
    tail = raw.rstrip()[-64:].lower()
    return not tail.endswith((b"</rss>", b"</feed>", b"</rdf:rdf>"))


def _item(entry: Mapping[str, Any], source: str, base_url: str | None, rejects: list[str]) -> NewsItem | None:
    title = _text(entry.get("title"))
    link = entry.get("link") or ""
    if base_url and link:
        link = urljoin(base_url, link)
    published = entry.get("published_parsed") or entry.get("updated_parsed")
    problem = None
    if not title:
        problem = "no title"
    elif urlsplit(link).scheme not in ("http", "https"):
        problem = f"link {link!r} is not an http(s) URL"
    elif published is None:
        problem = "no publication date"
    if problem is not None or published is None:
        rejects.append(f"{title[:60] or entry.get('id', '?')}: {problem}")
        return None
    summary_html = entry.get("summary") or ""
    content = entry.get("content") or []
    content_html = content[0].get("value", "") if content else ""
    description, summary_img = _extract(summary_html or content_html)
    return NewsItem(
        title=title,
        description=_shorten(description),
        url=link,
        source=source,
        # feedparser gives a UTC struct_time whatever offset the feed used.
        published_at=datetime.fromtimestamp(calendar.timegm(published), UTC),
        image_url=_image(entry, link, summary_img, content_html),
    )


def _text(value: Any) -> str:
    return strip_html(value) if isinstance(value, str) else ""


def _shorten(text: str) -> str:
    if len(text) <= MAX_DESCRIPTION_CHARS:
        return text
    cut = text[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"


def _image(entry: Mapping[str, Any], link: str, summary_img: str | None, content_html: str) -> str | None:
    candidates: list[str | None] = []
    for media in entry.get("media_content") or []:
        kind = media.get("medium") or media.get("type") or "image"
        if str(kind).startswith("image"):
            candidates.append(media.get("url"))
    candidates.extend(thumb.get("url") for thumb in entry.get("media_thumbnail") or [])
    for enclosure in entry.get("enclosures") or []:
        if str(enclosure.get("type", "")).startswith("image"):
            candidates.append(enclosure.get("href") or enclosure.get("url"))
    candidates.append(summary_img)
    if content_html:
        candidates.append(_extract(content_html)[1])
    for candidate in candidates:
        if candidate:
            url = urljoin(link, candidate.strip())
            if urlsplit(url).scheme in ("http", "https"):
                return url
    return None


class RssProvider(Provider[NewsItem]):
    """One RSS/Atom feed, fetched with conditional GET (ETag / Last-Modified).

    A 304 answer is a success with nothing new (an empty list). Validators are kept only after
    a body parsed, so a broken version is fetched again in full next time. Publishers update
    every few minutes; a 120 s budget is both fresh and polite.

    Args:
        feed: the feed's name and URL; the provider is named after it unless `name` is given.
    """

    spec = ProviderSpec("feed", "news", 1, timeout_s=15.0, min_interval_s=120.0, max_bytes=5_000_000)

    def __init__(self, feed: Feed, **options: Unpack[ProviderOptions]) -> None:
        options.setdefault("name", feed.provider_name)
        super().__init__(**options)
        self.feed = feed
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.not_modified_count = 0

    async def fetch(self, http: UpstreamHttp) -> list[NewsItem]:
        headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        started = time.perf_counter()
        reply = await http.get(self.feed.url, headers=headers)
        if reply.not_modified:
            self.not_modified_count += 1
            self.last_rejects = []
            logger.debug(
                "< %s 304 not modified in %.0f ms", self.name, (time.perf_counter() - started) * 1000
            )
            return []
        self.last_rejects = []
        # In a worker thread: feedparser takes a second or more on a 5 MB feed, which must not stall the loop.
        items = await asyncio.to_thread(
            parse_feed, reply.body, source=self.feed.name, feed_url=self.feed.url, rejects=self.last_rejects
        )
        self.etag = reply.headers.get("etag")
        self.last_modified = reply.headers.get("last-modified")
        return items
