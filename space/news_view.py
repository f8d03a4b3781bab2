"""The News tab: the stored feed (newest first) with sentiment badges, images, links and filters."""

from __future__ import annotations

import asyncio
from typing import Any

from space import feeds
from space.cache import Memo
from space.fmt import age_of, badge, esc, fmt_age
from space.parts import ScreenParts

__all__ = ["ALL_SOURCES", "news_html", "safe_url", "sentiment_badge", "source_choices"]

ALL_SOURCES = "All sources"
FEED_SIZE = 40
DESCRIPTION_CHARS = 260
_SENTIMENT_KIND = {"positive": "good", "negative": "bad", "neutral": "muted"}

_feed_memo: Memo[str] = Memo(size=128)
_sources_memo: Memo[list[str]] = Memo(size=4)


def safe_url(url: str | None) -> str | None:
    """Return an http(s) URL made safe for an attribute or CSS `url()`, or None for anything else."""
    if not url or not url.lower().startswith(("http://", "https://")):
        return None
    for char, code in (
        ('"', "%22"),
        ("'", "%27"),
        ("(", "%28"),
        (")", "%29"),
        ("\\", "%5C"),
        (" ", "%20"),
        ("<", "%3C"),
        (">", "%3E"),
        ("\n", ""),
        ("\r", ""),
    ):
        url = url.replace(char, code)
    return url


def sentiment_badge(sentiment: str | None, score: float | None, model: str | None) -> str:
    """Return the item's sentiment pill with its score, or say that no model scored it."""
    if sentiment is None:
        return (
            '<span class="hub-badge hub-muted" title="no model scored this item '
            '(the inference layer was off or failed)">unscored</span>'
        )
    text = f"{sentiment} {score:+.2f}" if score is not None else sentiment
    title = f' title="scored by {esc(model)}"' if model else ""
    return f'<span class="hub-badge hub-{_SENTIMENT_KIND.get(sentiment, "muted")}"{title}>{esc(text)}</span>'


def _card(item: dict[str, Any]) -> str:
    link = safe_url(item.get("url"))
    image = safe_url(item.get("image_url"))
    title = esc(item.get("title"))
    heading = (
        f'<a href="{esc(link)}" target="_blank" rel="noopener noreferrer">{title}</a>' if link else title
    )
    description = str(item.get("description") or "")
    if len(description) > DESCRIPTION_CHARS:
        description = description[:DESCRIPTION_CHARS].rsplit(" ", 1)[0] + "…"
    source = str(item.get("source") or "")
    thumb = (
        f'<div class="thumb" style="background-image:url(&quot;{esc(image)}&quot;)"></div>'
        if image
        else f'<div class="thumb none">{esc(source[:1].upper() or "?")}</div>'
    )
    age = fmt_age(age_of(item.get("published_at")))
    scored = sentiment_badge(item.get("sentiment"), item.get("sentiment_score"), item.get("sentiment_model"))
    model = item.get("sentiment_model")
    model_tag = f'<span class="model">{esc(model)}</span>' if model else ""
    return (
        f'<article class="hub-news" data-seq="{esc(item.get("seq"))}">{thumb}<div class="body">'
        f"<h4>{heading}</h4><p>{esc(description)}</p>"
        f'<div class="meta">{scored}{badge(source, "info")}<span class="when">{age} ago</span>{model_tag}'
        "</div></div></article>"
    )


async def news_html(parts: ScreenParts, keyword: str | None, source: str | None) -> str:
    """Return the feed's cards, filtered by keyword (title or description) and source."""
    keyword = (keyword or "").strip()[:100] or None
    source = None if not source or source == ALL_SOURCES else source
    key = (feeds.last_seq(parts.bus, "news"), keyword, source)

    async def render() -> str:
        # The retained stream history (the `?backlog=` items) joins the store: an item shows as soon
        # as it is published, before it is stored, and while the database is down.
        retained = feeds.recent_news(parts.bus, keyword, source, FEED_SIZE)
        note = ""
        try:
            stored = await asyncio.to_thread(parts.store.recent_news, keyword, FEED_SIZE, source)
        except Exception as exc:  # the database being down must not break the page
            if not retained:
                return (
                    f'<div class="hub-empty">News unavailable: database error ({esc(type(exc).__name__)})</div>'
                )
            stored = []
            note = (f'<div class="hub-note">Database error ({esc(type(exc).__name__)}): showing the '
                    f"{len(retained)} newest items this server holds in memory</div>")
        items = _merge(stored, retained)
        if not items:
            hint = (
                "no item matches these filters"
                if keyword or source
                else (
                    "no news received yet: items appear here as soon as a feed or POST /api/news "
                    "publishes them"
                )
            )
            return f'<div class="hub-empty">{hint}</div>'
        matching = " matching" if keyword or source else ""
        count = f'<div class="hub-count">{len(items)} newest items{matching}</div>'
        return note + count + '<div class="hub-feed" id="news-feed">' + "".join(_card(i) for i in items) + "</div>"

    return await _feed_memo.aget(key, render)


def _merge(stored: list[dict[str, Any]], retained: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the newest FEED_SIZE items of both lists, one per URL, newest published first."""
    by_url = {str(item.get("url")): item for item in retained}
    by_url.update({str(item.get("url")): item for item in stored})  # the stored row wins
    items = sorted(by_url.values(), key=lambda item: str(item.get("published_at") or ""), reverse=True)
    return items[:FEED_SIZE]


async def source_choices(parts: ScreenParts) -> list[str]:
    """Return the filter's choices: every source among recent stored news."""

    async def load() -> list[str]:
        try:
            items = await asyncio.to_thread(parts.store.recent_news, None, 300, None)
        except Exception:
            items = []
        return [ALL_SOURCES, *sorted({str(i["source"]) for i in items})]

    return await _sources_memo.aget(feeds.last_seq(parts.bus, "news"), load)
