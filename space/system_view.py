"""The System tab: data sources by category, requests over time, database, uptime and version."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from core.bus import Bus
from space import charts, feeds
from space.cache import Memo
from space.fmt import age_of, badge, esc, fmt_age, fmt_ms
from space.parts import ScreenParts

__all__ = ["overview_html", "requests_figure", "sources_html"]

_SOURCE_KIND = {"active": "good", "degraded": "warn", "inactive": "bad"}
_STORAGE_KIND = {"persistent": "good", "external": "good", "local": "muted", "ephemeral": "warn"}
_CATEGORY_TITLES = {
    "market_data": "Market data",
    "news": "News",
    "sentiment": "Sentiment",
    "social": "Social",
}
_requests_memo: Memo[go.Figure] = Memo(size=2)


def _card(title: str, value: str, sub: str = "", kind: str = "") -> str:
    return (
        f'<div class="hub-card stat {kind}"><div class="label">{esc(title)}</div>'
        f'<div class="value">{value}</div><div class="sub">{sub}</div></div>'
    )


def overview_html(parts: ScreenParts) -> str:
    """Return the cards: uptime, version, producers, sockets, requests and the database's health."""
    system = feeds.latest(parts.bus, "system")
    if system is None:
        return '<div class="hub-empty">Waiting for the first system_status…</div>'
    stats, db = system["stats"], system["database"]
    backend = parts.store.backend_name
    engine = "SQLite" if backend == "sqlite" else backend
    db_sub = f"{esc(engine)} · checked {fmt_age(age_of(db.get('last_check')))} ago"
    if db.get("error"):
        db_sub += f'<div class="reason">{esc(db["error"])}</div>'
    storage = db.get("storage")
    if storage:
        db_sub += f' · {badge(storage, _STORAGE_KIND.get(storage, "muted"))}'
        if storage == "ephemeral":
            db_sub += f'<div class="reason" id="storage-reason">{esc(db.get("storage_reason"))}</div>'
    cards = [
        _card("Uptime", fmt_age(stats.get("uptime_s")), f"version {esc(system.get('version'))}"),
        _card(
            "Producers",
            badge(
                "running" if system["agent_running"] else "stopped",
                "good" if system["agent_running"] else "bad",
            ),
            "background tasks alive",
        ),
        _card(
            "Database",
            badge("online" if db["online"] else "offline", "good" if db["online"] else "bad"),
            db_sub,
        ),
        _card("Live sockets", f"{stats.get('connections', 0):,}", "open WebSocket connections"),
        *_clients_card(system.get("clients")),
        _card(
            "Requests",
            f"{stats['requests_last_minute']:,}/min",
            f"{stats['requests_last_hour']:,} in the last hour",
        ),
        _card("Models", f"{stats['available_models']}/{stats['total_models']}", "available / total"),
        _card("Sources", f"{stats['active_sources']}/{stats['total_sources']}",
              f"active / total · {system['data_sources'].get('degraded', 0)} degraded"),
    ]
    topics = parts.bus.describe()
    bus_rows = "".join(
        f"<tr><td>{esc(name)}</td><td class=num>{t['seq']:,}</td><td class=num>{t['history']:,}</td>"
        f"<td class=num>{t['listeners']}</td><td><code>{esc(t['epoch'])}</code></td></tr>"
        for name, t in topics.items()
    )
    bus = (
        '<table class="hub-table compact" id="bus-table"><thead><tr><th>Topic</th><th>Last seq</th>'
        f"<th>History</th><th>Sockets</th><th>Epoch</th></tr></thead><tbody>{bus_rows}</tbody></table>"
    )
    return f'<div class="hub-cards stats">{"".join(cards)}</div>{bus}'


def _clients_card(clients: dict[str, Any] | None) -> list[str]:
    """Return the card telling clients apart: distinct addresses, and the single-address warning."""
    if not clients:
        return []
    warning = clients.get("warning")
    sub = f'trusting X-Forwarded-For from {esc(",".join(clients["trusted_proxies"]) or "no one")}'
    if warning:
        sub += f'<div class="reason" id="clients-warning">{esc(warning)}</div>'
    value = badge("one address", "warn") if warning else f"{clients['distinct_addresses']:,}"
    return [_card("Client addresses", value, sub, "warn" if warning else "")]


def sources_html(bus: Bus) -> str:
    """Return every data source grouped by category, with health, last error and latency."""
    system = feeds.latest(bus, "system")
    if system is None:
        return '<div class="hub-empty">Waiting for the first system_status…</div>'
    section = system["data_sources"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for source in section["sources"]:
        groups.setdefault(source["category"], []).append(source)
    blocks = []
    for category in sorted(
        groups, key=lambda c: list(_CATEGORY_TITLES).index(c) if c in _CATEGORY_TITLES else 99
    ):
        counts = section["categories"].get(category, {})
        rows = []
        for s in sorted(groups[category], key=lambda s: (s.get("priority", 0), s["name"])):
            success = s.get("last_success")
            rows.append(
                f'<tr data-source="{esc(s["name"])}"><td><b>{esc(s["name"])}</b></td>'
                f"<td>{badge(s['status'], _SOURCE_KIND.get(s['status'], 'muted'))}</td>"
                f"<td>{esc(f'{fmt_age(age_of(success))} ago' if success else 'never')}</td>"
                f'<td class="num">{fmt_ms(s.get("latency_ms"))}</td>'
                f'<td class="reason">{esc(s.get("last_error") or "")}</td>'
                f'<td class="reason">{esc(s.get("reason") or "")}</td></tr>'
            )
        title = _CATEGORY_TITLES.get(category, category)
        blocks.append(
            f'<section class="hub-group" data-category="{esc(category)}"><h4>{esc(title)} '
            f'<span class="sub">{counts.get("active", 0)}/{counts.get("total", 0)} active</span></h4>'
            '<table class="hub-table compact"><thead><tr><th>Source</th><th>Health</th>'
            "<th>Last success</th><th>Latency</th><th>Last error</th><th>Why</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            "</section>"
        )
    mode = f"data mode <b>{esc(section.get('data_mode'))}</b>"
    if section.get("simulated"):
        mode += " · " + badge("market on simulator", "warn")
    if len(groups) < len(_CATEGORY_TITLES):
        missing = ", ".join(_CATEGORY_TITLES[c] for c in _CATEGORY_TITLES if c not in groups)
        mode += f' · <span class="muted">no providers configured for: {esc(missing)}</span>'
    return f'<div class="hub-sources" id="sources"><p>{mode}</p>{"".join(blocks)}</div>'


def requests_figure(bus: Bus) -> go.Figure:
    """Return requests per minute and hour over time, one point per retained `system_status`."""

    def build() -> go.Figure:
        points = [
            (m["timestamp"], m["stats"]["requests_last_minute"], m["stats"]["requests_last_hour"])
            for m in feeds.history(bus, "system")
        ]
        return charts.requests_chart(points)

    return _requests_memo.get(feeds.last_seq(bus, "system"), build)
