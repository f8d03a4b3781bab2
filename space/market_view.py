"""The Market tab and the page header: live price table, simulated-data banner and price chart data."""

from __future__ import annotations

import asyncio
from typing import Any

import plotly.graph_objects as go

from core.clock import utc_now
from core.records import SIMULATOR_SOURCE
from space import charts, feeds
from space.cache import Memo
from space.fmt import age_of, badge, esc, fmt_age, fmt_big, fmt_pct, fmt_price, signed_class
from space.parts import ScreenParts

__all__ = ["MarketTable", "banner_html", "header_html", "price_figure", "summary_html"]

HISTORY_POINTS = 240
TICKS_SHOWN = 300
STALE_AFTER_S = 30.0


def banner_html(parts: ScreenParts) -> str:
    """Return the demo banner when any stream runs on simulated data, else an empty string."""
    streams = feeds.simulated_streams(parts)
    if not streams:
        return ""
    why = (
        "the server runs with DATA_MODE=demo"
        if parts.data_mode == "demo"
        else "no live market provider has answered yet (DATA_MODE=auto falls back to the simulator)"
    )
    return (
        '<div class="hub-banner" role="alert" id="hub-demo-banner">'
        f"<strong>Demo data</strong>: {esc(' and '.join(streams))} on this page are <em>simulated</em> "
        f'(<code>source: "{SIMULATOR_SOURCE}"</code>) because {esc(why)}. They are not market prices.'
        "</div>"
    )


def header_html(parts: ScreenParts) -> str:
    """Return the header's live pills: data mode, market source, sockets and uptime."""
    system = feeds.latest(parts.bus, "system") or {}
    stats = system.get("stats", {})
    if parts.market.simulated:
        market, kind = "market: simulator", "warn"
    elif feeds.prices(parts.bus, parts.symbols)[0]:
        market, kind = "market: live providers", "good"
    else:
        market, kind = "market: no provider answering yet", "bad"
    pills = [
        badge(f"data mode: {parts.data_mode}", "info"),
        badge(market, kind),
        badge(f"{len(parts.symbols)} symbols", "muted"),
        badge(f"{stats.get('connections', 0)} live sockets", "muted"),
        badge(f"up {fmt_age(stats.get('uptime_s'))}", "muted"),
    ]
    return f'<div class="hub-pills">{"".join(pills)}</div>'


class MarketTable:
    """Renders the price table once per market `seq`, remembering each symbol's last move for its arrow."""

    def __init__(self) -> None:
        self._memo: Memo[str] = Memo(size=4)
        self._last_price: dict[str, float] = {}
        self._direction: dict[str, str] = {}

    def html(self, parts: ScreenParts) -> str:
        """Return the table of every tracked symbol's latest `price_update`."""
        return self._memo.get(feeds.last_seq(parts.bus, "market"), lambda: self._render(parts))

    def _render(self, parts: ScreenParts) -> str:
        rows, error = feeds.prices(parts.bus, parts.symbols)
        if not rows:
            if parts.market.simulated:
                return '<div class="hub-empty">Waiting for the first price_update…</div>'
            return (
                '<div class="hub-empty">No price yet: no live market provider has answered. '
                "The System tab shows each source's last error.</div>"
            )
        now = utc_now()
        body = [self._row(message, now) for message in rows]
        notice = ""
        if error is not None and not parts.market.simulated and not parts.market.live_is_up():
            detail = error.get("error", {})
            notice = (
                f'<div class="hub-notice">{badge(detail.get("code", "error"), "bad")} '
                f"{esc(detail.get('message'))}: {esc(detail.get('details'))}</div>"
            )
        head = "".join(
            f"<th>{h}</th>"
            for h in ("Asset", "Price", "24h", "7d", "Volume 24h", "Market cap", "Source", "Age")
        )
        return (
            f'{notice}<table class="hub-table hub-market" id="market-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def _row(self, message: dict[str, Any], now: Any) -> str:
        data = message["data"]
        symbol, price = data["symbol"], data["price"]
        previous = self._last_price.get(symbol)
        if previous is not None and price != previous:
            self._direction[symbol] = "up" if price > previous else "down"
        self._last_price[symbol] = price
        move = self._direction.get(symbol, "flat")
        arrow = {"up": "▲", "down": "▼"}.get(move, "")
        age = age_of(data.get("timestamp"), now)
        source = message.get("source", "")
        source_kind = "warn" if source == SIMULATOR_SOURCE else "info"
        age_class = "stale" if age is not None and age > STALE_AFTER_S else ""
        return (
            f'<tr data-symbol="{esc(symbol)}"><td><span class="sym">'
            f'<span class="coin">{esc(symbol[:1])}</span><b>{esc(symbol)}</b></span></td>'
            f'<td class="num price {move}">{fmt_price(price)} <span class="arrow">{arrow}</span></td>'
            f'<td class="num {signed_class(data.get("change_24h"))}">{fmt_pct(data.get("change_24h"))}</td>'
            f'<td class="num {signed_class(data.get("change_7d"))}">{fmt_pct(data.get("change_7d"))}</td>'
            f'<td class="num">{fmt_big(data.get("volume_24h"))}</td>'
            f'<td class="num">{fmt_big(data.get("market_cap"))}</td>'
            f"<td>{badge(source, source_kind)}</td>"
            f'<td class="num age {age_class}">{fmt_age(age)}</td></tr>'
        )


def summary_html(parts: ScreenParts) -> str:
    """Return the tracked assets' totals: market cap, volume, breadth and the biggest 24h movers."""
    rows, _ = feeds.prices(parts.bus, parts.symbols)
    data = [m["data"] for m in rows]
    if not data:
        return ""
    cap = sum(d["market_cap"] for d in data if d.get("market_cap") is not None)
    volume = sum(d["volume_24h"] for d in data if d.get("volume_24h") is not None)
    moves = [d for d in data if d.get("change_24h") is not None]
    up = sum(1 for d in moves if d["change_24h"] > 0)
    down = sum(1 for d in moves if d["change_24h"] < 0)
    lines = [
        f"<p>Market cap <b>{fmt_big(cap)}</b></p>",
        f"<p>Volume 24h <b>{fmt_big(volume)}</b></p>",
        f'<p>Breadth <b class="up">{up} up</b> · <b class="down">{down} down</b></p>',
    ]
    if moves:
        best = max(moves, key=lambda d: d["change_24h"])
        worst = min(moves, key=lambda d: d["change_24h"])
        lines.append(
            f'<p>Top <b>{esc(best["symbol"])}</b> <span class="up">{fmt_pct(best["change_24h"])}</span> · '
            f"Bottom <b>{esc(worst['symbol'])}</b> "
            f'<span class="down">{fmt_pct(worst["change_24h"])}</span></p>'
        )
    return f'<div class="hub-card summary" id="market-summary"><h4>Tracked assets</h4>{"".join(lines)}</div>'


_chart_memo: Memo[go.Figure] = Memo(size=64, ttl_s=2.0)


async def price_figure(parts: ScreenParts, symbol: str, interval: str) -> go.Figure:
    """Return the chart of one symbol: stored buckets from the database plus recent ticks from memory."""
    symbol = (symbol or parts.symbols[0]).upper()
    key = (symbol, interval)

    async def build() -> go.Figure:
        try:
            buckets = await asyncio.to_thread(parts.store.price_history, symbol, interval, HISTORY_POINTS)
        except Exception as exc:  # the database being down must not break the page
            return charts.empty_figure(f"Price history unavailable: database error ({type(exc).__name__})")
        ticks = [
            (m["data"]["timestamp"], m["data"]["price"])
            for m in feeds.history(parts.bus, "market")
            if m.get("type") == "price_update" and m["data"]["symbol"] == symbol
        ][-TICKS_SHOWN:]
        latest = feeds.latest(parts.bus, "market", symbol) or {}
        return charts.price_chart(symbol, buckets, ticks, interval, latest.get("source", "unknown"))

    return await _chart_memo.aget(key, build)
