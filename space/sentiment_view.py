"""The Sentiment tab: Fear & Greed with its history, social sentiment, the market mood and its trend."""

from __future__ import annotations

import asyncio
from typing import Any

import plotly.graph_objects as go

from core.bus import Bus
from space import charts, feeds
from space.cache import Memo
from space.fmt import age_of, badge, esc, fmt_age
from space.parts import ScreenParts

__all__ = ["fear_greed_figure", "mood_html", "social_html", "trend_figures"]

ROLLING = 10
_MOOD_KIND = {"bullish": "good", "bearish": "bad", "neutral": "muted"}
_trend_memo: Memo[tuple[go.Figure, go.Figure]] = Memo(size=8)


def _data(bus: Bus) -> dict[str, Any]:
    message = feeds.latest(bus, "sentiment")
    return message["data"] if message else {}


def fear_greed_figure(bus: Bus) -> go.Figure:
    """Return the gauge of the latest Fear & Greed value, or an empty gauge with the reason."""
    reading = _data(bus).get("fear_greed")
    if not reading:
        return charts.fear_greed_gauge(None, None, "waiting for the first sentiment_update")
    if reading.get("value") is None:
        return charts.fear_greed_gauge(None, "no reading", reading.get("reason") or "unavailable")
    note = f"{reading.get('source') or 'unknown source'} · {fmt_age(age_of(reading.get('timestamp')))} ago"
    return charts.fear_greed_gauge(reading["value"], reading.get("classification"), note)


def social_html(bus: Bus) -> str:
    """Return one card per platform: sentiment, score and mentions, or why it is unavailable."""
    social = _data(bus).get("social") or {}
    if not social:
        return '<div class="hub-empty">Waiting for the first sentiment_update…</div>'
    cards = []
    for platform in ("twitter", "reddit", *sorted(set(social) - {"twitter", "reddit"})):
        entry = social.get(platform)
        if entry is None:
            continue
        mood = entry.get("sentiment")
        if mood is None:
            body = f'<div class="big muted">unavailable</div><p class="reason">{esc(entry.get("reason"))}</p>'
        else:
            mentions = entry.get("mentions")
            body = (
                f'<div class="big">{badge(mood, _MOOD_KIND.get(mood, "muted"))}</div>'
                f"<p>score <b>{entry.get('score', 0):+.2f}</b> · "
                f"{esc(f'{mentions:,}' if mentions is not None else '?')} mentions</p>"
            )
        cards.append(
            f'<div class="hub-card social" data-platform="{esc(platform)}"><h4>{esc(platform.title())}</h4>'
            f"{body}</div>"
        )
    return f'<div class="hub-cards">{"".join(cards)}</div>'


def mood_html(bus: Bus) -> str:
    """Return the market's overall sentiment with its confidence, or why there is none."""
    mood = _data(bus).get("market")
    if not mood:
        return '<div class="hub-empty">Waiting for the first sentiment_update…</div>'
    overall, confidence = mood.get("overall"), mood.get("confidence")
    if overall is None:
        return (
            f'<div class="hub-card mood"><h4>Market mood</h4><div class="big muted">no verdict</div>'
            f'<p class="reason">{esc(mood.get("reason"))}</p></div>'
        )
    percent = round(100 * (confidence or 0))
    inputs = "".join(
        f"<li>{esc(k)}: <b>{'—' if v is None else f'{v:+.2f}'}</b></li>"
        for k, v in (mood.get("inputs") or {}).items()
    )
    return (
        f'<div class="hub-card mood"><h4>Market mood</h4>'
        f'<div class="big">{badge(overall, _MOOD_KIND.get(overall, "muted"))}</div>'
        f'<div class="meter" title="confidence {percent}%"><span style="width:{percent}%"></span></div>'
        f"<p>confidence <b>{percent}%</b></p>{f'<ul class=inputs>{inputs}</ul>' if inputs else ''}</div>"
    )


async def trend_figures(parts: ScreenParts) -> tuple[go.Figure, go.Figure]:
    """Return (Fear & Greed history, sentiment trend) from the store and the sentiment history."""
    key = (feeds.last_seq(parts.bus, "sentiment"), feeds.last_seq(parts.bus, "news"))

    async def build() -> tuple[go.Figure, go.Figure]:
        try:
            history = await asyncio.to_thread(parts.store.fear_greed_history, 90)
            news = await asyncio.to_thread(parts.store.recent_news, None, 200, None)
        except Exception as exc:  # the database being down must not break the page
            message = f"History unavailable: database error ({type(exc).__name__})"
            return charts.empty_figure(message), charts.empty_figure(message)
        scored = sorted(
            (n["published_at"], n["sentiment_score"]) for n in news if n.get("sentiment_score") is not None
        )
        rolling = []
        for i in range(len(scored)):
            window = [s for _, s in scored[max(0, i - ROLLING + 1) : i + 1]]
            rolling.append((scored[i][0], sum(window) / len(window)))
        mood = []
        for update in feeds.history(parts.bus, "sentiment"):
            market = update["data"].get("market") or {}
            if market.get("overall") is not None and market.get("confidence") is not None:
                sign = {"bullish": 1, "bearish": -1}.get(market["overall"], 0)
                mood.append((update["timestamp"], sign * market["confidence"]))
        return charts.fear_greed_history(history), charts.sentiment_trend(scored, rolling, mood)

    return await _trend_memo.aget(key, build)
