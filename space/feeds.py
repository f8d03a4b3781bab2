"""What the views read from the runtime: bus messages as plain dicts, and the simulated-data check.

Messages are decoded from `Envelope.text`, the exact JSON the sockets carry: envelopes hold only the
encoded text (no model objects), which keeps the history rings cheap for the garbage collector.
"""

from __future__ import annotations

import json
from typing import Any

from desk.runtime import Runtime
from sources.simulator import SIMULATOR_SOURCE

__all__ = ["history", "last_seq", "latest", "prices", "recent_news", "simulated_streams"]


def latest(runtime: Runtime, topic: str, key: str | None = None) -> dict[str, Any] | None:
    """Return the newest message of a topic (of one key for `market`) as a dict, or None."""
    env = runtime.bus.latest(topic, key)
    return json.loads(env.text) if env is not None else None


def history(runtime: Runtime, topic: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Return the retained messages of a topic, oldest first (the newest `limit` when given)."""
    envelopes = runtime.bus.history(topic)
    if limit is not None:
        envelopes = envelopes[-limit:]
    return [json.loads(env.text) for env in envelopes]


def recent_news(runtime: Runtime, keyword: str | None, source: str | None, limit: int) -> list[dict[str, Any]]:
    """Return the newest retained news items (what `/ws/news?backlog=` sends), newest first, as `data` + `seq`."""
    word, wanted = (keyword or "").lower(), (source or "").lower()
    items: list[dict[str, Any]] = []
    for env in reversed(runtime.bus.history("news")):
        if len(items) >= limit:
            break
        if (word and word not in env.match_text) or (wanted and env.source != wanted):
            continue
        message = json.loads(env.text)
        items.append({**message["data"], "seq": message.get("seq")})
    return items


def last_seq(runtime: Runtime, topic: str) -> int:
    """Return the topic's newest seq: views use it as their cache key."""
    return int(runtime.bus.last_seq(topic))


def prices(runtime: Runtime) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Return the latest `price_update` per tracked symbol (settings order) and the latest market error."""
    by_symbol: dict[str, dict[str, Any]] = {}
    error = None
    for env in runtime.bus.snapshot("market"):
        message = json.loads(env.text)
        if env.key is None:
            error = message if message.get("type") == "error" else error
        else:
            by_symbol[env.key] = message
    order = list(runtime.settings.symbols)
    rows = [by_symbol[s] for s in order if s in by_symbol]
    rows += [m for s, m in by_symbol.items() if s not in order]
    return rows, error


def simulated_streams(runtime: Runtime) -> list[str]:
    """Name every stream that carries simulated values now (empty in live operation)."""
    streams = []
    rows, _ = prices(runtime)
    if runtime.market.simulated or any(row.get("source") == SIMULATOR_SOURCE for row in rows):
        streams.append("market prices")
    return streams
