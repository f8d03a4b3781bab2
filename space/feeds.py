"""What the views read from the bus: messages as plain dicts, prices per symbol, and the simulated-data check.

Messages are decoded from `Envelope.text`, the exact JSON the sockets carry: envelopes hold only the
encoded text (no model objects), which keeps the history rings cheap for the garbage collector.
"""

from __future__ import annotations

import json
from typing import Any

from core.bus import Bus
from sources.simulator import SIMULATOR_SOURCE
from space.parts import ScreenParts

__all__ = ["history", "last_seq", "latest", "prices", "recent_news", "simulated_streams"]


def latest(bus: Bus, topic: str, key: str | None = None) -> dict[str, Any] | None:
    """Return the newest message of a topic (of one key for `market`) as a dict, or None."""
    env = bus.latest(topic, key)
    return json.loads(env.text) if env is not None else None


def history(bus: Bus, topic: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Return the retained messages of a topic, oldest first (the newest `limit` when given)."""
    envelopes = bus.history(topic)
    if limit is not None:
        envelopes = envelopes[-limit:]
    return [json.loads(env.text) for env in envelopes]


def recent_news(bus: Bus, keyword: str | None, source: str | None, limit: int) -> list[dict[str, Any]]:
    """Return the newest retained news items (what `/ws/news?backlog=` sends), newest first, as `data` + `seq`."""
    word, wanted = (keyword or "").lower(), (source or "").lower()
    items: list[dict[str, Any]] = []
    for env in reversed(bus.history("news")):
        if len(items) >= limit:
            break
        if (word and word not in env.match_text) or (wanted and env.source != wanted):
            continue
        message = json.loads(env.text)
        items.append({**message["data"], "seq": message.get("seq")})
    return items


def last_seq(bus: Bus, topic: str) -> int:
    """Return the topic's newest seq: views use it as their cache key."""
    return int(bus.last_seq(topic))


def prices(bus: Bus, symbols: tuple[str, ...]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Return the latest `price_update` per symbol (`symbols` first, in order) and the latest market error."""
    by_symbol: dict[str, dict[str, Any]] = {}
    error = None
    for env in bus.snapshot("market"):
        message = json.loads(env.text)
        if env.key is None:
            error = message if message.get("type") == "error" else error
        else:
            by_symbol[env.key] = message
    rows = [by_symbol[s] for s in symbols if s in by_symbol]
    rows += [m for s, m in by_symbol.items() if s not in symbols]
    return rows, error


def simulated_streams(parts: ScreenParts) -> list[str]:
    """Name every stream that carries simulated values now (empty in live operation)."""
    streams = []
    rows, _ = prices(parts.bus, parts.symbols)
    if parts.market.simulated or any(row.get("source") == SIMULATOR_SOURCE for row in rows):
        streams.append("market prices")
    return streams
