"""The Python client's resume state, apart from its sockets: what to replay on reconnect, what to drop.

`ResumeState` remembers the stream position (`last_seq` and `epoch`, per symbol on the market stream),
the subscription and filter to send again after every reconnect, and the backoff attempt count. It
decides which frames are new (duplicates from a replay and news outside the filter are dropped, an
epoch change restarts the position), what URL resumes the stream, which requests to send, and how long
to wait before the next attempt. It does no I/O and reads no clock: client.py's `HubClient` drives it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from crypto_hub_client.endpoints import MARKET_PATH, NEWS_PATH

__all__ = ["MAX_SYMBOLS_PER_REQUEST", "Backoff", "ClientStats", "ResumeState"]

logger = logging.getLogger("crypto_hub_client")

MAX_SYMBOLS_PER_REQUEST = 500  # core/protocol.py's SubscribeRequest bound


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, initial * factor**n)).

    Full jitter spreads a crowd of clients that lost the same server over the whole window, so a
    restart is not met by a synchronised stampede (AWS Architecture Blog, "Exponential Backoff And Jitter").
    """

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap < self.initial or self.factor < 1:
            raise ValueError(
                f"expected 0 < initial <= cap and factor >= 1, got initial={self.initial}, "
                f"cap={self.cap}, factor={self.factor}"
            )

    def ceiling(self, attempt: int) -> float:
        """Return the largest delay attempt `attempt` (0-based) may wait."""
        try:
            return min(self.cap, self.initial * self.factor ** max(0, attempt))
        except OverflowError:
            return self.cap

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Return a random delay for attempt `attempt`, between 0 and its ceiling."""
        return rng.uniform(0.0, self.ceiling(attempt))


@dataclass
class ClientStats:
    """Counters of one client's life."""

    connects: int = 0
    messages: int = 0
    duplicates_dropped: int = 0  # replayed messages the client had already delivered
    filtered_locally: int = 0  # news outside the filter that reached us before the server applied it
    heartbeat_timeouts: int = 0

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


def _symbols(symbols: Iterable[str]) -> set[str]:
    return {s.strip().upper() for s in symbols if s.strip()}


class ResumeState:
    """What one client must remember across connections, and what it decides from it.

    Args:
        url: the endpoint; its path says whether symbols (market) or a filter (news) apply.
        symbols, keywords, sources: the subscription and filter, sent again on every connect.
        since, epoch: a position saved by an earlier run.
        backoff, rng: reconnect delays and their jitter.
        filter_locally: also apply the news filter to frames (the server replays missed news before
            the re-sent `filter` reaches it).

    Raises:
        ValueError: symbols on a stream other than market, or a filter on a stream other than news.
    """

    def __init__(
        self,
        url: str,
        *,
        symbols: Iterable[str] | None = None,
        keywords: Iterable[str] | None = None,
        sources: Iterable[str] | None = None,
        since: int | None = None,
        epoch: str | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        filter_locally: bool = True,
    ) -> None:
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        self.url = url
        self.is_market = path.endswith(MARKET_PATH)
        self.is_news = path.endswith(NEWS_PATH)
        if symbols and not self.is_market:
            raise ValueError(f"symbols need the {MARKET_PATH} endpoint, got path {parts.path!r}")
        if (keywords or sources) and not self.is_news:
            raise ValueError(f"keywords and sources need the {NEWS_PATH} endpoint, got path {parts.path!r}")
        self.symbols = _symbols(symbols or ())
        self.keywords: tuple[str, ...] = ()
        self.sources: tuple[str, ...] | None = None
        self.set_filter(keywords or (), sources)
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.filter_locally = filter_locally
        self.stats = ClientStats()
        self.epoch = epoch
        self.last_seq = since or 0
        self._last_by_key: dict[str | None, int] = {None: self.last_seq}
        self.attempt = 0  # failed attempts since the last stable connection

    # ------------------------------------------------------------ position

    def resume_url(self) -> str:
        """Return the URL to connect to: the endpoint with `since` and `epoch` once a position is known."""
        parts = urlsplit(self.url)
        kept = parse_qsl(parts.query, keep_blank_values=True)
        query = [(k, v) for k, v in kept if k not in ("since", "epoch")]
        if self.last_seq > 0 or self.epoch is not None:
            query.append(("since", str(self.last_seq)))
            if self.epoch is not None:
                query.append(("epoch", self.epoch))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def accept(self, raw: str | bytes) -> dict[str, Any] | None:
        """Decode one frame; return None for frames already delivered, outside the filter or not JSON objects."""
        try:
            message = json.loads(raw)
        except ValueError:
            logger.warning("client %s: dropping a frame that is not JSON: %r", self.url, raw[:80])
            return None
        if not isinstance(message, dict):
            return None
        error = message.get("error")
        if message.get("type") == "error" and isinstance(error, dict) and error.get("code") == "SEQ_AHEAD":
            # Our position is ahead of the server's stream (a write it lost, or another server): forget
            # it, or the items it now sends under those seqs would be dropped as already seen.
            logger.warning("client %s: %s; resuming from the live stream", self.url, error.get("message"))
            self.epoch, self.last_seq, self._last_by_key = None, 0, {}
        seq, epoch = message.get("seq"), message.get("epoch")
        if isinstance(seq, int) and isinstance(epoch, str):
            if epoch != self.epoch:
                if self.epoch is not None:
                    logger.info("client %s: epoch %s -> %s, the stream's history restarted",
                                self.url, self.epoch, epoch)
                self.epoch, self.last_seq = epoch, 0
                self._last_by_key = {}
            # Market frames coalesce per symbol in the server's outbox, so their seqs only grow per symbol.
            key = _symbol_of(message) if self.is_market else None
            if seq <= self._last_by_key.get(key, 0):
                self.stats.duplicates_dropped += 1
                return None
            self._last_by_key[key] = seq
            self.last_seq = max(self.last_seq, seq)
        is_news = self.is_news and message.get("type") == "news"
        if is_news and self.filter_locally and not self.wants(message):
            self.stats.filtered_locally += 1
            return None
        self.stats.messages += 1
        return message

    def wants(self, message: dict[str, Any]) -> bool:
        """Return whether a news message passes the filter (ws/session_state.py's `wants_news`, on JSON)."""
        data = message.get("data") or {}
        if self.keywords:
            text = f"{data.get('title', '')} {data.get('description', '')}".lower()
            if not any(word in text for word in self.keywords):
                return False
        if self.sources:
            return str(data.get("source", "")).lower() in {s.lower() for s in self.sources}
        return True

    # ------------------------------------------------------------ requests

    def connect_requests(self) -> list[dict[str, Any]]:
        """Return the requests that restore the subscription and filter on a new connection."""
        requests: list[dict[str, Any]] = [
            {"action": "subscribe", "symbols": chunk} for chunk in _chunks(sorted(self.symbols))
        ]
        if self.keywords or self.sources:
            requests.append(self.filter_request())
        return requests

    def subscribe(self, symbols: Iterable[str]) -> list[dict[str, Any]]:
        """Add symbols; return the requests that add them now."""
        wanted = _symbols(symbols)
        self.symbols |= wanted
        return [{"action": "subscribe", "symbols": chunk} for chunk in _chunks(sorted(wanted))]

    def unsubscribe(self, symbols: Iterable[str]) -> list[dict[str, Any]]:
        """Remove symbols; return the requests that remove them now."""
        unwanted = _symbols(symbols)
        self.symbols -= unwanted
        return [{"action": "unsubscribe", "symbols": chunk} for chunk in _chunks(sorted(unwanted))]

    def set_filter(self, keywords: Iterable[str], sources: Iterable[str] | None = None) -> dict[str, Any]:
        """Replace the news filter; return the request that sets it now."""
        self.keywords = tuple(k.strip().lower() for k in keywords if k.strip())
        self.sources = tuple(s.strip() for s in sources) if sources else None
        return self.filter_request()

    def filter_request(self) -> dict[str, Any]:
        """Return the `filter` request for the current filter."""
        request: dict[str, Any] = {"action": "filter", "keywords": list(self.keywords)}
        if self.sources:
            request["sources"] = list(self.sources)
        return request

    # ------------------------------------------------------------ reconnecting

    def connected(self) -> None:
        """Count a connection that opened."""
        self.stats.connects += 1

    def ended(self, lived_s: float, stable_after_s: float) -> None:
        """Note that a connection ended after `lived_s` seconds; a stable one resets the backoff."""
        if lived_s >= stable_after_s:
            self.attempt = 0

    def next_delay(self) -> float:
        """Return how long to wait before the next attempt, and count the attempt."""
        delay = self.backoff.delay(self.attempt, self.rng)
        self.attempt += 1
        return delay


def _symbol_of(message: dict[str, Any]) -> str | None:
    data = message.get("data")
    if message.get("type") == "price_update" and isinstance(data, dict):
        symbol = data.get("symbol")
        return symbol if isinstance(symbol, str) else None
    return None


def _chunks(items: list[str], size: int = MAX_SYMBOLS_PER_REQUEST) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
