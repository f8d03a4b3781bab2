"""One WebSocket connection: auth, limits, subscriptions and filters, a bounded outbox and its writer.

The reader handles client messages; the bus calls `offer()` (never blocking) with every envelope of
the endpoint's topic; a writer task drains the outbox to the socket. A reader that is too slow for
a lossless stream (news) is told `SLOW_CONSUMER` and closed with 1013 so it can resume from `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from core.bus import Bus, Envelope, HistoryGap
from core.config import Settings
from core.counters import RequestCounter
from core.protocol import (
    AckMessage,
    CloseCode,
    ErrorCode,
    FilterRequest,
    GetAllRequest,
    PingRequest,
    PongMessage,
    ProtocolError,
    SubscribeRequest,
    UnsubscribeRequest,
    error_frame,
    parse_client_message,
)
from core.token_bucket import TokenBucket
from ws.admission import ConnectionLimiter
from ws.outbox import Outbox, OutboxFull

__all__ = ["EndpointSpec", "Session", "SocketRegistry", "SocketStats"]

logger = logging.getLogger(__name__)

# Refused messages in a row after which a client is considered abusive and closed with 1008.
ABUSE_LIMIT = 100
CLOSE_GRACE_S = 2.0


@dataclass(frozen=True)
class EndpointSpec:
    """What distinguishes one of the five endpoints: its path, bus topic and the actions it takes."""

    path: str
    topic: str
    actions: frozenset[str] = frozenset()
    greet_with_snapshot: bool = True


@dataclass
class SocketStats:
    """Counters the monitoring stream and /metrics read."""

    connections: dict[str, int] = field(default_factory=dict)
    messages_sent: int = 0
    messages_received: int = 0
    errors_sent: int = 0
    slow_consumer_closes: int = 0
    refused_connections: int = 0
    idle_closes: int = 0
    coalesced: int = 0  # price frames replaced by a newer one, summed over closed connections
    dropped_on_close: int = 0  # frames discarded when a slow consumer was closed


@dataclass
class SocketRegistry:
    """Everything a session needs from the app, and the registry of open sessions."""

    bus: Bus
    settings: Settings
    symbols: frozenset[str]
    counter: RequestCounter
    limiter: ConnectionLimiter
    stats: SocketStats = field(default_factory=SocketStats)
    sessions: set[Session] = field(default_factory=set)
    # Market sessions by subscribed symbol: a price reaches only its subscribers, so a tick costs
    # O(subscribers) and not O(sessions x symbols).
    market_index: dict[str, set[Session]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bus.add_listener("market", self.route_market)

    def route_market(self, envelope: Envelope) -> None:
        """Hand a market envelope to the sessions subscribed to its symbol (all of them for key None)."""
        if envelope.key is None:
            targets: Iterable[Session] = {s for subs in self.market_index.values() for s in subs}
        else:
            targets = self.market_index.get(envelope.key, ())
        for session in tuple(targets):
            session.offer(envelope)

    def index_symbols(self, session: Session, added: Iterable[str] = (), removed: Iterable[str] = ()) -> None:
        """Keep `market_index` in step with one session's subscriptions."""
        for symbol in added:
            self.market_index.setdefault(symbol, set()).add(session)
        for symbol in removed:
            subs = self.market_index.get(symbol)
            if subs is not None:
                subs.discard(session)
                if not subs:
                    del self.market_index[symbol]

    async def close_all(self, code: int = CloseCode.WS_1001_GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every open socket with `code` and wait (bounded) for their handlers to finish."""
        for session in list(self.sessions):
            session.request_close(code, reason)
        deadline = asyncio.get_running_loop().time() + CLOSE_GRACE_S + 1
        while self.sessions and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)


def _client_address(websocket: WebSocket, trusted: tuple[str, ...]) -> str:
    """Return the client's address, believing X-Forwarded-For only from a trusted proxy."""
    peer = websocket.client.host if websocket.client else "unknown"
    forwarded = websocket.headers.get("x-forwarded-for")
    if forwarded and (peer in trusted or "*" in trusted):
        return forwarded.split(",")[0].strip() or peer
    return peer


def _offered_token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """Return (token, subprotocol to echo) from ?token=, Authorization: Bearer or Sec-WebSocket-Protocol."""
    token = websocket.query_params.get("token")
    if token:
        return token, None
    auth = websocket.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), None
    for proto in websocket.headers.get("sec-websocket-protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith("token."):
            return proto[len("token.") :], proto
        if proto:
            return proto, proto
    return None, None


def _split(csv: str | None) -> list[str]:
    return [part for part in (csv or "").split(",") if part.strip()]


def _token_is_valid(offered: str | None, tokens: Iterable[str]) -> bool:
    if offered is None:
        return False
    # Compare against every token so the time taken does not depend on which one matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(offered.encode(), token.encode())
    return matched


class Session:
    """State and tasks of one open socket."""

    def __init__(self, websocket: WebSocket, spec: EndpointSpec, hub: SocketRegistry) -> None:
        self.websocket = websocket
        self.spec = spec
        self.hub = hub
        settings = hub.settings
        self.outbox = Outbox(settings.outbox_size)
        self.bucket = TokenBucket(1.0 / settings.messages_per_second, capacity=settings.message_burst)
        self.symbols: set[str] = set()
        self.keywords: tuple[str, ...] = ()
        self.sources: frozenset[str] | None = None
        self.refused_in_a_row = 0
        self.told_rate_limited = False  # RATE_LIMITED was sent for the current flood
        self.address = "unknown"
        self.close_code: int | None = None
        self.close_reason = ""
        self._closing = asyncio.Event()
        self.last_activity = asyncio.get_running_loop().time()  # last frame in either direction (idle timeout)

    # ------------------------------------------------------------ bus side (never blocks)

    def offer(self, envelope: Envelope) -> None:
        """Queue an envelope from the bus if this connection wants it (the bus listener)."""
        if self._closing.is_set():
            return
        if self.spec.topic == "market":
            if envelope.key is None:  # a stream-wide message such as CONNECTION_ERROR
                if self.symbols:
                    self._queue(envelope.text)
            elif envelope.key in self.symbols:
                self.outbox.put(envelope.text, key=envelope.key)
            return
        if self.spec.topic == "news" and not self._wants_news(envelope):
            return
        self._queue(envelope.text)

    def _wants_news(self, envelope: Envelope) -> bool:
        if self.keywords and not any(word in envelope.match_text for word in self.keywords):
            return False
        return self.sources is None or envelope.source in self.sources

    def _queue(self, text: str, key: str | None = None) -> None:
        try:
            self.outbox.put(text, key=key)
        except OutboxFull:
            self._fail_slow()

    def _fail_slow(self) -> None:
        self.hub.stats.slow_consumer_closes += 1
        logger.warning(
            "ws %s: slow consumer, %d frames waiting; closing with 1013", self.spec.path, len(self.outbox)
        )
        frame = error_frame(
            ErrorCode.SLOW_CONSUMER,
            "This connection fell too far behind the stream and is being closed",
            f"outbox limit {self.outbox.maxsize} frames; reconnect with ?since=<last seq> to resume",
        )
        self.hub.stats.dropped_on_close += len(self.outbox)
        self.outbox.put_urgent(frame)
        self.request_close(CloseCode.WS_1013_TRY_AGAIN_LATER, "slow consumer")

    def request_close(self, code: int, reason: str) -> None:
        """Ask the session to close with `code` once queued frames (or the grace period) are done."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._closing.set()

    def send_error(self, code: ErrorCode, message: str, details: str | None = None, request_id: Any = None) -> None:
        """Queue an `error` message for this client."""
        self.hub.stats.errors_sent += 1
        self._queue(error_frame(code, message, details, request_id))

    # ------------------------------------------------------------ lifecycle

    async def serve(self) -> None:
        """Accept (or refuse) the socket, then run reader and writer until either ends."""
        ws, hub = self.websocket, self.hub
        address = self.address = _client_address(ws, hub.settings.trusted_proxies)
        subprotocol = None
        if hub.settings.api_tokens:
            token, subprotocol = _offered_token(ws)
            if not _token_is_valid(token, hub.settings.api_token_values()):
                await self._refuse(ErrorCode.AUTH_ERROR, "Missing or invalid API token",
                                   "send ?token=, an Authorization: Bearer header or a Sec-WebSocket-Protocol value",
                                   subprotocol)
                return
        if hub.settings.allowed_origins:
            origin = ws.headers.get("origin")
            if origin is not None and origin not in hub.settings.allowed_origins:
                await self._refuse(ErrorCode.AUTH_ERROR, f"Origin {origin!r} is not allowed", None, subprotocol)
                return
        refusal = hub.limiter.acquire(address)
        if refusal is not None:
            hub.stats.refused_connections += 1
            await self._refuse(ErrorCode.TOO_MANY_CONNECTIONS, "Too many connections", refusal, subprotocol,
                               CloseCode.WS_1013_TRY_AGAIN_LATER)
            return
        try:
            await ws.accept(subprotocol=subprotocol)
            hub.counter.add()
            hub.sessions.add(self)
            hub.stats.connections[self.spec.path] = hub.stats.connections.get(self.spec.path, 0) + 1
            await self._run()
        except Exception:
            # Logged here once, with the socket it belongs to; the client gets 1011, not a bare 1006.
            logger.exception("ws %s from %s: session failed; closing with 1011", self.spec.path, address)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(CloseCode.WS_1011_INTERNAL_ERROR, "internal error"), CLOSE_GRACE_S)
        finally:
            hub.sessions.discard(self)
            hub.stats.coalesced += self.outbox.coalesced
            hub.limiter.release(address)
            if self.spec.path in hub.stats.connections:
                hub.stats.connections[self.spec.path] -= 1

    async def _refuse(self, code: ErrorCode, message: str, details: str | None, subprotocol: str | None,
                      close: int = CloseCode.WS_1008_POLICY_VIOLATION) -> None:
        await self.websocket.accept(subprotocol=subprotocol)
        await self.websocket.send_text(error_frame(code, message, details))
        await self.websocket.close(code=close, reason=message[:120])

    async def _run(self) -> None:
        self._greet()
        # Market sessions are reached through the hub's symbol index; the others listen to their topic.
        listening = (contextlib.nullcontext() if self.spec.topic == "market"
                     else self.hub.bus.listen(self.spec.topic, self.offer))
        with listening:
            writer = asyncio.create_task(self._write_loop(), name=f"ws-writer {self.spec.path}")
            reader = asyncio.create_task(self._read_loop(), name=f"ws-reader {self.spec.path}")
            closing = asyncio.create_task(self._closing.wait())
            try:
                await self._wait_until_done_or_idle({writer, reader, closing})
                self._report_failed(writer, reader)
                if self.close_code is not None and not writer.done() and len(self.outbox):
                    # Let the writer flush the last frames (the SLOW_CONSUMER error) within a bound;
                    # it returns by itself once the outbox is empty.
                    await asyncio.wait({writer}, timeout=CLOSE_GRACE_S)
            finally:
                for task in (writer, reader, closing):
                    task.cancel()
                await asyncio.gather(writer, reader, closing, return_exceptions=True)
        self.hub.index_symbols(self, removed=self.symbols)
        if self.close_code is not None:
            try:
                await asyncio.wait_for(self.websocket.close(self.close_code, self.close_reason), CLOSE_GRACE_S)
            except (TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
                pass

    def _report_failed(self, *tasks: asyncio.Task[Any]) -> None:
        """Log a reader or writer that died of an error (not a disconnect) and close with 1011."""
        for task in tasks:
            if not task.done() or task.cancelled():
                continue
            exc = task.exception()
            if exc is None or isinstance(exc, (WebSocketDisconnect, OSError)):
                continue  # the peer went away: nothing to report
            logger.error("ws %s from %s: %s failed; closing with 1011", self.spec.path, self.address,
                         task.get_name(), exc_info=exc)
            self.request_close(CloseCode.WS_1011_INTERNAL_ERROR, "internal error")

    async def _wait_until_done_or_idle(self, tasks: set[asyncio.Task[Any]]) -> None:
        """Wait for the first task to end; close the socket once nothing travelled for IDLE_TIMEOUT_S."""
        loop, idle_s = asyncio.get_running_loop(), self.hub.settings.idle_timeout_s
        while True:
            left = self.last_activity + idle_s - loop.time()
            if left <= 0 and self.close_code is None:
                self.hub.stats.idle_closes += 1
                reason = f"idle timeout: nothing exchanged for {idle_s:g} s"
                self.request_close(CloseCode.WS_1000_NORMAL_CLOSURE, reason)
                left = idle_s
            done, _ = await asyncio.wait(tasks, timeout=max(left, 0.05), return_when=asyncio.FIRST_COMPLETED)
            if done:
                return

    def _greet(self) -> None:
        """Queue resume replay (`?since=`), initial symbols, or the topic's snapshot."""
        params = self.websocket.query_params
        symbols = params.get("symbols")
        if symbols and self.spec.topic == "market":
            try:
                self._subscribe([s for s in symbols.split(",") if s], request_id=None, ack=False)
            except ProtocolError as exc:
                self.send_error(exc.code, f"?symbols=: {exc.message}", exc.details)
        if self.spec.topic == "news":
            # Filters from the URL apply before the replay (a reconnecting client's filter is not re-sent yet).
            try:
                self._set_filter(_split(params.get("keywords")), _split(params.get("sources")) or None)
            except ProtocolError as exc:
                self.send_error(exc.code, f"URL filter: {exc.message}", exc.details)
        since_raw = params.get("since")
        epoch = params.get("epoch") or None
        bus = self.hub.bus
        if since_raw is not None:
            try:
                since = int(since_raw)
            except ValueError:
                self.send_error(ErrorCode.INVALID_MESSAGE, f"since must be an integer seq, got {since_raw[:20]!r}")
                return
            if self.spec.topic == "news":
                try:
                    for env in bus.since("news", since, epoch):
                        if self._wants_news(env):
                            self.outbox.put(env.text, bounded=False)
                except HistoryGap as gap:
                    self.send_error(ErrorCode.HISTORY_GAP, "Some messages after your seq are no longer retained",
                                    f"asked for seq > {gap.since}; retained history starts at {gap.oldest}; "
                                    "live stream follows")
                return
            for env in bus.replay_snapshot_since(self.spec.topic, since, epoch):
                self.offer(env)
            return
        if self.spec.topic == "news" and params.get("backlog") is not None:
            self._send_backlog(params["backlog"])
            return
        if self.spec.greet_with_snapshot and self.spec.topic != "market":
            latest = bus.latest(self.spec.topic)
            if latest is not None:
                self.offer(latest)

    def _send_backlog(self, raw: str) -> None:
        """Queue the latest N retained news items that pass the filter, oldest first (`?backlog=N`)."""
        limit = self.hub.settings.max_news_backlog
        try:
            wanted = int(raw)
        except ValueError:
            wanted = -1
        if not 0 <= wanted <= limit:
            self.send_error(ErrorCode.INVALID_MESSAGE,
                            f"backlog must be an integer from 0 to {limit}, got {raw[:20]!r}",
                            "no backlog sent; the live stream follows")
            return
        picked: list[Envelope] = []
        for env in reversed(self.hub.bus.history("news")):
            if len(picked) >= wanted:
                break
            if self._wants_news(env):
                picked.append(env)
        for env in reversed(picked):
            self.outbox.put(env.text, bounded=False)  # at most MAX_NEWS_BACKLOG frames

    async def _write_loop(self) -> None:
        stats, loop = self.hub.stats, asyncio.get_running_loop()
        while True:
            text = await self.outbox.get()
            await self.websocket.send_text(text)
            stats.messages_sent += 1
            self.last_activity = loop.time()
            if self._closing.is_set() and not len(self.outbox):
                return

    async def _read_loop(self) -> None:
        ws, limit = self.websocket, self.hub.settings.max_frame_bytes
        loop = asyncio.get_running_loop()
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect" or self._closing.is_set():
                return  # a closing session acts on nothing more
            self.last_activity = loop.time()
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            self.hub.counter.add()
            self.hub.stats.messages_received += 1
            if not self.bucket.try_acquire(loop.time()):
                self._rate_limited()
                continue
            self.told_rate_limited = False  # the flood is over; the next one is told again
            size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
            if size > limit:
                self._refused(ErrorCode.MESSAGE_TOO_LARGE, f"Message of {size} bytes exceeds the limit",
                              f"frames may be at most {limit} bytes")
                continue
            try:
                request = parse_client_message(raw)  # raises only ProtocolError, whatever the frame
                self._handle(request)
                self.refused_in_a_row = 0
            except ProtocolError as exc:
                self._refused(exc.code, exc.message, exc.details)
            except Exception:
                logger.exception("ws %s from %s: handling a client message failed", self.spec.path, self.address)
                self._refused(ErrorCode.INTERNAL_ERROR, "The server failed to handle this message",
                              "the failure is logged; the connection stays open")

    def _refused(self, code: ErrorCode, message: str, details: str | None) -> None:
        """Count a refused message and answer it, unless the client is now closed as abusive."""
        self.refused_in_a_row += 1
        if self.refused_in_a_row > ABUSE_LIMIT:
            self.request_close(CloseCode.WS_1008_POLICY_VIOLATION, "too many refused messages")
            return
        self.send_error(code, message, details)

    def _rate_limited(self) -> None:
        # One RATE_LIMITED per flood, however the flood began: the client must learn why it is ignored.
        if self.told_rate_limited:
            self.refused_in_a_row += 1
            if self.refused_in_a_row > ABUSE_LIMIT:
                self.request_close(CloseCode.WS_1008_POLICY_VIOLATION, "too many refused messages")
            return
        self.told_rate_limited = True
        self._refused(ErrorCode.RATE_LIMITED, "Too many messages",
                      f"limit {1 / self.bucket.interval_s:g} messages/s with bursts of {self.bucket.capacity}; "
                      "messages past it are dropped until the rate falls")

    # ------------------------------------------------------------ client actions

    def _handle(self, request: object) -> None:
        if isinstance(request, PingRequest):
            self._queue(PongMessage(id=request.id).model_dump_json())
            return
        action = getattr(request, "action", "")
        if action not in self.spec.actions:
            owner = {"subscribe": "/ws/market_data", "unsubscribe": "/ws/market_data",
                     "get_all": "/ws/market_data", "filter": "/ws/news"}.get(action, "no endpoint")
            raise ProtocolError(ErrorCode.UNKNOWN_ACTION, f"Action {action!r} is not available on {self.spec.path}",
                                f"{action!r} belongs to {owner}")
        if isinstance(request, SubscribeRequest):
            self._subscribe(request.symbols, request.id)
        elif isinstance(request, UnsubscribeRequest):
            wanted = {s.upper() for s in request.symbols}
            self.hub.index_symbols(self, removed=wanted & self.symbols)
            self.symbols -= wanted
            self._ack("unsubscribe", {"symbols": sorted(self.symbols)}, request.id)
        elif isinstance(request, GetAllRequest):
            for env in self.hub.bus.snapshot("market"):
                if env.key is not None:
                    self.outbox.put(env.text, key=env.key)
        elif isinstance(request, FilterRequest):
            self._set_filter(request.keywords, request.sources)
            self._ack("filter", {"keywords": list(self.keywords),
                                 "sources": sorted(self.sources) if self.sources else None}, request.id)

    def _set_filter(self, keywords: list[str], sources: list[str] | None) -> None:
        """Apply a news filter; past MAX_KEYWORDS / MAX_SOURCES the filter is cleared and refused."""
        settings = self.hub.settings
        words = tuple(k.strip().lower() for k in keywords if k.strip())
        names = frozenset(s.strip().lower() for s in sources if s.strip()) if sources else None
        for kind, count, limit in (("keywords", len(words), settings.max_keywords),
                                   ("sources", len(names or ()), settings.max_sources)):
            if count > limit:
                self.keywords, self.sources = (), None
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"Too many {kind}",
                                    f"at most {limit}, got {count}; the filter is cleared")
        self.keywords, self.sources = words, names or None

    def _subscribe(self, symbols: list[str], request_id: Any, ack: bool = True) -> None:
        wanted = {s.strip().upper() for s in symbols}
        unknown = sorted(wanted - self.hub.symbols)
        known = wanted & self.hub.symbols
        limit = self.hub.settings.max_symbols_per_connection
        if len(self.symbols | known) > limit:
            raise ProtocolError(ErrorCode.INVALID_SYMBOL, "Too many symbols for one connection",
                                f"at most {limit}; unsubscribe some first")
        new = known - self.symbols
        self.symbols |= known
        self.hub.index_symbols(self, added=new)
        if unknown:
            self.send_error(ErrorCode.INVALID_SYMBOL, f"Unknown symbol(s): {', '.join(unknown)[:200]}",
                            f"tracked symbols: {', '.join(sorted(self.hub.symbols))}", request_id)
        if ack:
            self._ack("subscribe", {"symbols": sorted(self.symbols)}, request_id)
        for symbol in sorted(new):
            latest = self.hub.bus.latest("market", symbol)
            if latest is not None:
                self.outbox.put(latest.text, key=symbol)

    def _ack(self, action: str, data: dict[str, Any], request_id: Any) -> None:
        # The topic's position lets a client that has seen no message yet resume later.
        bus = self.hub.bus
        data = {**data, "seq": bus.last_seq(self.spec.topic), "epoch": bus.epoch(self.spec.topic)}
        self._queue(AckMessage(action=action, data=data, id=request_id).model_dump_json())
