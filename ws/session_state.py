"""The protocol state of one socket, apart from its I/O, the way python-websockets keeps `protocol.py`
apart from `asyncio/connection.py`.

`SessionState` decides everything about a connection: which bus envelopes it wants (subscriptions and
news filters), what each client message is answered with, the message budget (token bucket), when
refused messages make a client abusive, the idle clock, resume replay (`?since=`, `?backlog=`) and
when a slow reader must be closed. It reads the time from an injected clock and never awaits, sleeps or
touches a socket: its decisions are frames queued in `outbox`, in the order they must be written, and
a close request (`close_code`, `close_reason`). `ws/session.py` writes those frames and performs the close.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.bus import Bus, Envelope, HistoryGap
from core.config import LimitsSection
from core.endpoints import MARKET_PATH, NEWS_PATH
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
from ws.outbox import Outbox, OutboxFull

__all__ = ["ABUSE_LIMIT", "SINCE_AHEAD_GRACE_S", "EndpointSpec", "SessionState", "SocketStats"]

# The socket's whole story (accept, refusals, failures, close) is told under one logger name.
logger = logging.getLogger("ws.session")

# Refused messages in a row after which a client is considered abusive and closed with 1008.
ABUSE_LIMIT = 100
# In a cluster, how long a resume position ahead of this process's stream is believed (the process
# may lag the one the client came from) before SEQ_AHEAD is sent and the live stream is unmuted.
SINCE_AHEAD_GRACE_S = 5.0
# Which endpoint owns each action, for the UNKNOWN_ACTION hint.
ACTION_OWNERS = {"subscribe": MARKET_PATH, "unsubscribe": MARKET_PATH, "get_all": MARKET_PATH, "filter": NEWS_PATH}


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
    messages_sent_direct: int = 0  # of messages_sent, those written without the ASGI layers (ws/direct.py)
    messages_received: int = 0
    errors_sent: int = 0
    slow_consumer_closes: int = 0
    refused_connections: int = 0
    idle_closes: int = 0
    coalesced: int = 0  # price frames replaced by a newer one, summed over closed connections
    dropped_on_close: int = 0  # frames discarded when a slow consumer was closed
    sessions_ended: int = 0  # accepted connections that have ended (the GC pacer's measure of turnover)


def _split(csv: str | None) -> list[str]:
    return [part for part in (csv or "").split(",") if part.strip()]


def _no_index(added: Iterable[str], removed: Iterable[str]) -> None:
    del added, removed


class SessionState:
    """Everything one connection remembers and decides, driven by calls and an injected clock.

    Args:
        spec: the endpoint this connection is on.
        limits: the limits section of the settings (outbox size, message budget, frame size, filter sizes,
            idle timeout).
        bus: read for snapshots, replay and the topic's position (never published to).
        symbols: the symbols the app tracks.
        stats: the process-wide counters this connection adds to.
        clock: monotonic seconds; the idle clock and the message budget read it.
        on_symbols: told `(added, removed)` whenever the subscription set changes, so the registry's
            symbol index routes prices to this connection.

    The caller feeds it `greet()` once, `receive()` per client frame, `offer()` per bus envelope and
    `sent()` per frame written, writes `next_frame()` until None, and closes the socket with
    `close_code` once that is set and the outbox is empty.
    """

    def __init__(
        self,
        spec: EndpointSpec,
        limits: LimitsSection,
        bus: Bus,
        symbols: frozenset[str],
        stats: SocketStats,
        clock: Callable[[], float],
        on_symbols: Callable[[Iterable[str], Iterable[str]], None] = _no_index,
    ) -> None:
        self.spec = spec
        self.limits = limits
        self.bus = bus
        self.tracked = symbols
        self.stats = stats
        self.clock = clock
        self.on_symbols = on_symbols
        self.outbox = Outbox(limits.outbox_size)
        self.bucket = TokenBucket(1.0 / limits.messages_per_second, capacity=limits.message_burst)
        self.symbols: set[str] = set()
        self.keywords: tuple[str, ...] = ()
        self.sources: frozenset[str] | None = None
        self.refused_in_a_row = 0
        self.told_rate_limited = False  # RATE_LIMITED was sent for the current flood
        self.peer = "unknown"  # the client's address, for log lines
        self.close_code: int | None = None
        self.close_reason = ""
        self.last_activity = clock()  # last frame in either direction (idle timeout)
        # (epoch, seq) a resuming news client already has: live items at or below it are not resent.
        # Behind a shared port the client may land on a process whose bus has not reached its seq yet;
        # without this, those items would reach it twice once they arrive.
        self.news_floor: tuple[str, int] | None = None
        self.floor_deadline: float | None = None  # when a floor ahead of this process's stream expires

    @property
    def closing(self) -> bool:
        """Return whether a close was requested (nothing more is queued or acted on)."""
        return self.close_code is not None

    # ------------------------------------------------------------ frames out

    def next_frame(self) -> str | None:
        """Return the next frame to write, or None when the outbox is empty."""
        return self.outbox.pop()

    def sent(self) -> None:
        """Record that one frame reached the socket."""
        self.stats.messages_sent += 1
        self.last_activity = self.clock()

    def request_close(self, code: int, reason: str) -> None:
        """Close with `code` once the queued frames are written; the first request wins."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason

    def idle_deadline(self) -> float | None:
        """Return the clock time of the next check: idleness, or a resume position expiring (None once closing)."""
        if self.closing:
            return None
        idle_at = self.last_activity + self.limits.idle_timeout_s
        return idle_at if self.floor_deadline is None else min(idle_at, self.floor_deadline)

    def check_idle(self) -> bool:
        """Act on a deadline that passed: an expired resume position gets SEQ_AHEAD, a socket silent for
        IDLE_TIMEOUT_S a 1000 close; return whether a frame was queued or a close requested."""
        if self.floor_deadline is not None and self.clock() >= self.floor_deadline:
            self.floor_deadline = None
            floor, self.news_floor = self.news_floor, None
            topic = self.spec.topic
            if floor is not None and floor[0] == self.bus.epoch(topic) and self.bus.last_seq(topic) < floor[1]:
                self._tell_seq_ahead(floor[1])  # the stream never reached the client's seq: stop muting it
                return True
        deadline = self.last_activity + self.limits.idle_timeout_s
        if self.closing or self.clock() < deadline:
            return False
        self.stats.idle_closes += 1
        idle_s = self.limits.idle_timeout_s
        self.request_close(CloseCode.WS_1000_NORMAL_CLOSURE, f"idle timeout: nothing exchanged for {idle_s:g} s")
        return True

    def finish(self) -> None:
        """Forget the subscriptions and add this connection's counters to the totals (after the socket ended)."""
        self.on_symbols((), self.symbols)
        # The callback is a bound method of the session that holds this state: dropping it breaks
        # that cycle, so a closed connection's session and state are freed at once rather than
        # left for the collector (the pauses under churn were mostly freeing closed sockets).
        self.on_symbols = _no_index
        self.stats.coalesced += self.outbox.coalesced

    # ------------------------------------------------------------ bus side (never blocks)

    def offer(self, envelope: Envelope) -> bool:
        """Queue an envelope from the bus if this connection wants it; return whether a frame was queued."""
        if self.closing:
            return False
        if self.spec.topic == "market":
            if envelope.key is None:  # a stream-wide message such as CONNECTION_ERROR
                if not self.symbols:
                    return False
                self._queue(envelope.text)
            elif envelope.key in self.symbols:
                self.outbox.put(envelope.text, key=envelope.key)
            else:
                return False
            return True
        if self.spec.topic == "news" and (not self.wants_news(envelope) or self._already_has(envelope)):
            return False
        self._queue(envelope.text)
        return True

    def _already_has(self, envelope: Envelope) -> bool:
        floor = self.news_floor
        if floor is None:
            return False
        if envelope.epoch != floor[0] or envelope.seq > floor[1]:
            self.news_floor = self.floor_deadline = None  # the stream passed the client's position
            return False
        return True

    def wants_news(self, envelope: Envelope) -> bool:
        """Return whether a news envelope passes this connection's keyword and source filter."""
        if self.keywords and not any(word in envelope.match_text for word in self.keywords):
            return False
        return self.sources is None or envelope.source in self.sources

    def _queue(self, text: str, key: str | None = None) -> None:
        try:
            self.outbox.put(text, key=key)
        except OutboxFull:
            self._fail_slow()

    def _fail_slow(self) -> None:
        self.stats.slow_consumer_closes += 1
        logger.warning("ws %s: slow consumer, %d frames waiting; closing with 1013", self.spec.path, len(self.outbox))
        frame = error_frame(
            ErrorCode.SLOW_CONSUMER,
            "This connection fell too far behind the stream and is being closed",
            f"outbox limit {self.outbox.maxsize} frames; reconnect with ?since=<last seq> to resume",
        )
        self.stats.dropped_on_close += len(self.outbox)
        self.outbox.put_urgent(frame)
        self.request_close(CloseCode.WS_1013_TRY_AGAIN_LATER, "slow consumer")

    def send_error(self, code: ErrorCode, message: str, details: str | None = None, request_id: Any = None) -> None:
        """Queue an `error` message for this client."""
        self.stats.errors_sent += 1
        self._queue(error_frame(code, message, details, request_id))

    # ------------------------------------------------------------ connect

    def greet(self, params: Mapping[str, str], fresh: Envelope | None = None) -> None:
        """Queue resume replay (`?since=`), initial symbols, or the topic's snapshot, from the URL's query.

        `fresh`: a greeting built for this connect, sent instead of the topic's last message unless the
        bus has a newer one.
        """
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
        bus = self.bus
        if since_raw is not None:
            try:
                since = int(since_raw)
            except ValueError:
                self.send_error(ErrorCode.INVALID_MESSAGE, f"since must be an integer seq, got {since_raw[:20]!r}")
                return
            if self._since_is_ahead(since, epoch):
                return
            if self.spec.topic == "news":
                if epoch is not None:
                    self.news_floor = (epoch, since)
                try:
                    for env in bus.since("news", since, epoch):
                        if self.wants_news(env):
                            self.outbox.put(env.text, bounded=False)
                except HistoryGap as gap:
                    self.send_error(ErrorCode.HISTORY_GAP, "Some messages after your seq are no longer retained",
                                    f"asked for seq > {gap.since}; retained history starts at {gap.oldest}; "
                                    "live stream follows")
                return
            for env in bus.replay_snapshot_since(self.spec.topic, since, epoch):
                self.offer(env)
            return
        backlog = params.get("backlog")
        if self.spec.topic == "news" and backlog is not None:
            self._send_backlog(backlog)
            return
        if self.spec.greet_with_snapshot and self.spec.topic != "market":
            latest = bus.latest(self.spec.topic)
            if fresh is not None and (latest is None or fresh.seq >= latest.seq):
                latest = fresh
            if latest is not None:
                self.offer(latest)

    def _since_is_ahead(self, since: int, epoch: str | None) -> bool:
        """Answer a `since` beyond the newest seq of this epoch; return True when it was refused outright.

        Believing it would mute every message up to `since` (a position kept from a lost write, or a
        made-up one). A single process refuses it with SEQ_AHEAD at once and serves a fresh connect.
        In a cluster this process may lag the one the client came from, so news keeps the position
        for SINCE_AHEAD_GRACE_S and sends SEQ_AHEAD only if the stream has not reached it by then.
        """
        topic, bus = self.spec.topic, self.bus
        if since <= bus.last_seq(topic) or (epoch is not None and epoch != bus.epoch(topic)):
            return False
        if topic == "news" and bus.relayed:
            self.floor_deadline = self.clock() + SINCE_AHEAD_GRACE_S
            return False
        self._tell_seq_ahead(since)
        if topic != "news":
            for env in bus.snapshot(topic):
                self.offer(env)
        return True

    def _tell_seq_ahead(self, since: int) -> None:
        topic = self.spec.topic
        newest = self.bus.last_seq(topic)
        self.send_error(ErrorCode.SEQ_AHEAD, f"since={since} is ahead of the stream: its newest seq is {newest}",
                        f"epoch {self.bus.epoch(topic)}; the live stream follows from seq {newest + 1}, so "
                        f"reset your position to {newest}")

    def _send_backlog(self, raw: str) -> None:
        """Queue the latest N retained news items that pass the filter, oldest first (`?backlog=N`)."""
        limit = self.limits.max_news_backlog
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
        for env in reversed(self.bus.history("news")):
            if len(picked) >= wanted:
                break
            if self.wants_news(env):
                picked.append(env)
        for env in reversed(picked):
            self.outbox.put(env.text, bounded=False)  # at most MAX_NEWS_BACKLOG frames

    # ------------------------------------------------------------ client frames

    def receive(self, raw: str | bytes) -> None:
        """Act on one client frame: answer it, or refuse it with a coded error (a closing session ignores it)."""
        if self.closing:
            return
        now = self.clock()
        self.last_activity = now
        self.stats.messages_received += 1
        if not self.bucket.try_acquire(now):
            self._rate_limited()
            return
        self.told_rate_limited = False  # the flood is over; the next one is told again
        limit = self.limits.max_frame_bytes
        size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
        if size > limit:
            self._refused(ErrorCode.MESSAGE_TOO_LARGE, f"Message of {size} bytes exceeds the limit",
                          f"frames may be at most {limit} bytes")
            return
        try:
            request = parse_client_message(raw)  # raises only ProtocolError, whatever the frame
            self._handle(request)
            self.refused_in_a_row = 0
        except ProtocolError as exc:
            self._refused(exc.code, exc.message, exc.details)
        except Exception:
            logger.exception("ws %s from %s: handling a client message failed", self.spec.path, self.peer)
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

    def _handle(self, request: object) -> None:
        if isinstance(request, PingRequest):
            self._queue(PongMessage(id=request.id).model_dump_json())
            return
        action = getattr(request, "action", "")
        if action not in self.spec.actions:
            owner = ACTION_OWNERS.get(action, "no endpoint")
            raise ProtocolError(ErrorCode.UNKNOWN_ACTION, f"Action {action!r} is not available on {self.spec.path}",
                                f"{action!r} belongs to {owner}")
        if isinstance(request, SubscribeRequest):
            self._subscribe(request.symbols, request.id)
        elif isinstance(request, UnsubscribeRequest):
            wanted = {s.upper() for s in request.symbols}
            self.on_symbols((), wanted & self.symbols)
            self.symbols -= wanted
            self._ack("unsubscribe", {"symbols": sorted(self.symbols)}, request.id)
        elif isinstance(request, GetAllRequest):
            for env in self.bus.snapshot("market"):
                if env.key is not None:
                    self.outbox.put(env.text, key=env.key)
        elif isinstance(request, FilterRequest):
            self._set_filter(request.keywords, request.sources)
            self._ack("filter", {"keywords": list(self.keywords),
                                 "sources": sorted(self.sources) if self.sources else None}, request.id)

    def _set_filter(self, keywords: list[str], sources: list[str] | None) -> None:
        """Apply a news filter; past MAX_KEYWORDS / MAX_SOURCES the filter is cleared and refused."""
        limits = self.limits
        words = tuple(k.strip().lower() for k in keywords if k.strip())
        names = frozenset(s.strip().lower() for s in sources if s.strip()) if sources else None
        for kind, count, limit in (("keywords", len(words), limits.max_keywords),
                                   ("sources", len(names or ()), limits.max_sources)):
            if count > limit:
                self.keywords, self.sources = (), None
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"Too many {kind}",
                                    f"at most {limit}, got {count}; the filter is cleared")
        self.keywords, self.sources = words, names or None

    def _subscribe(self, symbols: list[str], request_id: Any, ack: bool = True) -> None:
        wanted = {s.strip().upper() for s in symbols}
        unknown = sorted(wanted - self.tracked)
        known = wanted & self.tracked
        limit = self.limits.max_symbols_per_connection
        if len(self.symbols | known) > limit:
            raise ProtocolError(ErrorCode.INVALID_SYMBOL, "Too many symbols for one connection",
                                f"at most {limit}; unsubscribe some first")
        new = known - self.symbols
        self.symbols |= known
        self.on_symbols(new, ())
        if unknown:
            self.send_error(ErrorCode.INVALID_SYMBOL, f"Unknown symbol(s): {', '.join(unknown)[:200]}",
                            f"tracked symbols: {', '.join(sorted(self.tracked))}", request_id)
        if ack:
            self._ack("subscribe", {"symbols": sorted(self.symbols)}, request_id)
        for symbol in sorted(new):
            latest = self.bus.latest("market", symbol)
            if latest is not None:
                self.outbox.put(latest.text, key=symbol)

    def _ack(self, action: str, data: dict[str, Any], request_id: Any) -> None:
        # The topic's position lets a client that has seen no message yet resume later.
        bus = self.bus
        data = {**data, "seq": bus.last_seq(self.spec.topic), "epoch": bus.epoch(self.spec.topic)}
        self._queue(AckMessage(action=action, data=data, id=request_id).model_dump_json())
