"""One WebSocket connection's I/O: auth, accept, read, write, close, around its protocol state.

The decisions (subscriptions, filters, budgets, replay, slow readers, idle clock) are `SessionState`'s, in
ws/session_state.py; this module is the thin Starlette adapter that performs them. The handler task reads
client frames and is the only task a connection has in the common case: the bus calls `offer()` (never
blocking) and the frame is written straight to the socket while the socket takes it. Only a write that
finds the transport paused (the peer reads slower than we write) is finished by a drain task, which then
empties the outbox that filled meanwhile; the outbox's bound and the slow-consumer rules (news lossless:
`SLOW_CONSUMER` and close 1013; prices coalesced per symbol) are the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from core.bus import Bus, Envelope
from core.config import AccessSection, LimitsSection
from core.counters import RequestCounter
from core.log_context import current_served
from core.protocol import CloseCode, ErrorCode, error_frame
from ws.admission import ConnectionLimiter
from ws.direct import DirectWriter
from ws.eager import Pending, step
from ws.outbox import Outbox
from ws.session_state import ABUSE_LIMIT, EndpointSpec, SessionState, SocketStats

__all__ = ["ABUSE_LIMIT", "EndpointSpec", "Session", "SocketRegistry", "SocketStats"]

logger = logging.getLogger(__name__)

CLOSE_GRACE_S = 2.0
# Close codes no frame carries (RFC 6455 7.4.1), for the close log line: not in `CloseCode`, which the
# server sends. 1005: the client's close frame had no code; 1006: it left without a close frame.
WS_1005_NO_STATUS_RECEIVED = 1005
WS_1006_ABNORMAL_CLOSURE = 1006


@dataclass
class SocketRegistry:
    """Everything a session needs from the app, and the registry of open sessions."""

    bus: Bus
    limits: LimitsSection
    access: AccessSection  # API tokens and allowed origins, checked before a socket is accepted
    symbols: frozenset[str]
    counter: RequestCounter
    limiter: ConnectionLimiter
    stats: SocketStats = field(default_factory=SocketStats)
    sessions: set[Session] = field(default_factory=set)
    # Market sessions by subscribed symbol: a price reaches only its subscribers, so a tick costs
    # O(subscribers) and not O(sessions x symbols).
    market_index: dict[str, set[Session]] = field(default_factory=dict)
    # Per topic, a greeting built when a client connects, preferred to the topic's last message when
    # it is as new (the monitoring socket's `system_status`); None falls back to the last message.
    fresh_greetings: dict[str, Callable[[], Awaitable[Envelope | None]]] = field(default_factory=dict)

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


def _client_address(websocket: WebSocket) -> str:
    """Return the client's address (app.py's ClientAddress middleware already read a trusted proxy's headers)."""
    return websocket.client.host if websocket.client else "unknown"


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


def _token_is_valid(offered: str | None, tokens: Iterable[str]) -> bool:
    if offered is None:
        return False
    # Compare against every token so the time taken does not depend on which one matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(offered.encode(), token.encode())
    return matched


class Session:
    """One open socket: accepts or refuses it, then performs what its `SessionState` decides.

    Writes go straight to the socket from whatever called (`offer()` from the bus, the reader after a
    client message) while the transport takes data; a write that has to wait is finished by a drain
    task, and frames queued meanwhile follow it in order from the outbox.
    """

    # The protocol state's class: tests inject faults into a session by subclassing it.
    state_class: type[SessionState] = SessionState

    def __init__(self, websocket: WebSocket, spec: EndpointSpec, registry: SocketRegistry) -> None:
        self.websocket = websocket
        self.spec = spec
        self.registry = registry
        self._loop = asyncio.get_running_loop()
        self.state = self.state_class(spec, registry.limits, registry.bus, registry.symbols, registry.stats,
                                      self._loop.time, self._index_symbols)
        self._open = False  # accepted and not yet past its close frame (or a failed write): frames may go out
        self._flushing = False
        self._drain: asyncio.Task[None] | None = None  # only while a write waits for the transport
        self._closer: asyncio.Task[None] | None = None  # only while a close frame waits for the transport
        self._grace: asyncio.TimerHandle | None = None  # bounds a drain once a close was requested
        self._wake: asyncio.Timeout | None = None  # the reader's receive deadline (idle clock, or now to stop)
        self._done_reading = False
        self._direct: DirectWriter | None = None  # set once accepted, where frames may skip ASGI
        # Who closed first and with which code, for the close line; None until a close frame went or came.
        self._close_code: int | None = None
        self._closed_by = ""
        # The connection's id, path and client, for lines logged from another task's context (the bus's `offer`).
        self._served = current_served()

    @property
    def outbox(self) -> Outbox:
        """Return the frames waiting for this socket (monitoring reads its depth)."""
        return self.state.outbox

    @property
    def address(self) -> str:
        """Return the client's address."""
        return self.state.peer

    def _index_symbols(self, added: Iterable[str], removed: Iterable[str]) -> None:
        self.registry.index_symbols(self, added=added, removed=removed)

    # ------------------------------------------------------------ bus side (never blocks)

    def offer(self, envelope: Envelope) -> None:
        """Send an envelope from the bus if this connection wants it (the bus listener)."""
        if self.state.offer(envelope):
            self._flush()

    def request_close(self, code: int, reason: str) -> None:
        """Close with `code` once queued frames (or the grace period) are done."""
        self.state.request_close(code, reason)
        self._flush()

    # ------------------------------------------------------------ writing

    def _write(self, text: str) -> Coroutine[Any, Any, None]:
        return self.websocket.send_text(text)

    def _flush(self) -> None:
        """Write queued frames straight to the socket; hand a write that must wait to a drain task."""
        if not self._open or self._flushing:
            return
        state = self.state
        if self._drain is not None:
            if state.closing and self._grace is None:
                self._grace = self._loop.call_later(CLOSE_GRACE_S, self._give_up_draining)
            return
        self._flushing = True  # one writer at a time, so frames leave in the outbox's order
        direct = self._direct
        try:
            while (text := state.next_frame()) is not None:
                if direct is not None and direct.ready():
                    batch = [text]
                    while (more := state.next_frame()) is not None:
                        batch.append(more)
                    try:
                        direct.write(batch)
                    except Exception as exc:
                        self._write_failed(exc)
                        return
                    for _ in batch:
                        state.sent()
                    self.registry.stats.messages_sent_direct += len(batch)
                    continue
                try:
                    pending = step(self._write(text))
                except Exception as exc:
                    self._write_failed(exc)
                    return
                if pending is not None:
                    self._drain = self._loop.create_task(self._drain_outbox(pending),
                                                         name=f"ws-drain {self.spec.path}")
                    if state.closing:
                        self._grace = self._loop.call_later(CLOSE_GRACE_S, self._give_up_draining)
                    return
                state.sent()
            if state.closing:
                self._close()
        finally:
            self._flushing = False

    async def _drain_outbox(self, pending: Pending) -> None:
        """Finish a write the transport made wait, then write what queued up meanwhile."""
        state = self.state
        failure: Exception | None = None
        try:
            await pending
            state.sent()
            while (text := state.next_frame()) is not None:
                await self._write(text)
                state.sent()
        except Exception as exc:
            failure = exc
        finally:
            self._drain = None
        if failure is not None:
            self._write_failed(failure)
        else:
            self._flush()  # the outbox is empty: this sends the close frame if one was requested

    def _give_up_draining(self) -> None:
        """The grace period after a close request ran out with a write still waiting: close anyway."""
        self._grace = None
        drain = self._drain
        if drain is not None and self._closer is None:
            drain.cancel()
            self._closer = self._loop.create_task(self._close_after(drain), name=f"ws-close {self.spec.path}")

    async def _close_after(self, drain: asyncio.Task[None]) -> None:
        await asyncio.wait({drain})
        pending = self._begin_close()
        if pending is not None:
            await self._finish_close(pending)

    def _write_failed(self, exc: Exception) -> None:
        if isinstance(exc, (WebSocketDisconnect, OSError)):
            self._open = False  # the peer went away: nothing to report, nothing more to write
            self._stop_reading()
            return
        logger.error("ws %s from %s: writing to the socket failed; closing with 1011", self.spec.path,
                     self.address, exc_info=exc,
                     extra=self._served.fields() if self._served is not None else None)
        self.state.request_close(CloseCode.WS_1011_INTERNAL_ERROR, "internal error")
        self._close()

    # ------------------------------------------------------------ closing

    def _close(self) -> None:
        pending = self._begin_close()
        if pending is not None:
            self._closer = self._loop.create_task(self._finish_close(pending), name=f"ws-close {self.spec.path}")

    def _begin_close(self) -> Pending | None:
        """Send the close frame if the transport takes it now; return the rest of the send otherwise."""
        if not self._open:
            return None
        self._open = False  # nothing may follow the close frame
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        state = self.state
        code = state.close_code if state.close_code is not None else CloseCode.WS_1000_NORMAL_CLOSURE
        self._note_close(code, "server")
        try:
            pending = step(self.websocket.close(code, state.close_reason))
        except (RuntimeError, OSError, WebSocketDisconnect):
            pending = None  # already closed, or the peer is gone
        if pending is None:
            self._stop_reading()
        return pending

    async def _finish_close(self, pending: Pending) -> None:
        try:
            async with asyncio.timeout(CLOSE_GRACE_S):
                await pending
        except (TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
            pass
        finally:
            self._stop_reading()

    def _stop_reading(self) -> None:
        """End the reader: the socket is closed, or closing it was given up."""
        self._done_reading = True
        wake = self._wake
        if wake is not None and not wake.expired():
            wake.reschedule(self._loop.time())

    # ------------------------------------------------------------ lifecycle

    async def serve(self) -> None:
        """Accept (or refuse) the socket, then read it until it ends."""
        ws, registry = self.websocket, self.registry
        address = self.state.peer = _client_address(ws)
        subprotocol = None
        if registry.access.api_tokens:
            token, subprotocol = _offered_token(ws)
            if not _token_is_valid(token, registry.access.api_token_values()):
                await self._refuse(ErrorCode.AUTH_ERROR, "Missing or invalid API token",
                                   "send ?token=, an Authorization: Bearer header or a Sec-WebSocket-Protocol value",
                                   subprotocol)
                return
        if registry.access.allowed_origins:
            origin = ws.headers.get("origin")
            if origin is not None and origin not in registry.access.allowed_origins:
                await self._refuse(ErrorCode.AUTH_ERROR, f"Origin {origin!r} is not allowed", None, subprotocol)
                return
        refusal = registry.limiter.acquire(address)
        if refusal is not None:
            registry.stats.refused_connections += 1
            await self._refuse(ErrorCode.TOO_MANY_CONNECTIONS, "Too many connections", refusal, subprotocol,
                               CloseCode.WS_1013_TRY_AGAIN_LATER)
            return
        accepted, opened_at = False, 0.0
        try:
            try:
                await ws.accept(subprotocol=subprotocol)
            except Exception as exc:  # the client hung up before its handshake was answered: no one to tell
                logger.info("ws %s from %s: gone before accept (%s)", self.spec.path, address, type(exc).__name__)
                return
            accepted = True
            opened_at = self._loop.time()
            logger.info("ws open %s from %s", self.spec.path, address)
            registry.counter.add()
            registry.sessions.add(self)
            registry.stats.connections[self.spec.path] = registry.stats.connections.get(self.spec.path, 0) + 1
            await self._run()
        except Exception:
            # Logged here once, with the socket it belongs to; the client gets 1011, not a bare 1006.
            logger.exception("ws %s from %s: session failed; closing with 1011", self.spec.path, address)
            self._note_close(CloseCode.WS_1011_INTERNAL_ERROR, "server")
            self._open = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(CloseCode.WS_1011_INTERNAL_ERROR, "internal error"), CLOSE_GRACE_S)
        finally:
            registry.sessions.discard(self)
            self.state.finish()
            registry.limiter.release(address)
            if accepted:  # a client gone before its accept was never counted in
                registry.stats.connections[self.spec.path] -= 1
                registry.stats.sessions_ended += 1
                self._log_close(self._loop.time() - opened_at)

    def _note_close(self, code: int, by: str) -> None:
        """Remember the first close: the server's frame, or the client's (1006: it left without one)."""
        if self._close_code is None:
            self._close_code, self._closed_by = code, by

    def _log_close(self, duration_s: float) -> None:
        self._note_close(WS_1006_ABNORMAL_CLOSURE, "client")  # gone without a close frame
        logger.info("ws close %s from %s: %s by the %s after %.2f s", self.spec.path, self.address,
                    self._close_code, self._closed_by, duration_s,
                    extra={"close_code": self._close_code, "closed_by": self._closed_by,
                           "duration_s": round(duration_s, 3)})

    async def _refuse(self, code: ErrorCode, message: str, details: str | None, subprotocol: str | None,
                      close: int = CloseCode.WS_1008_POLICY_VIOLATION) -> None:
        await self.websocket.accept(subprotocol=subprotocol)
        await self.websocket.send_text(error_frame(code, message, details))
        await self.websocket.close(code=close, reason=message[:120])

    async def _run(self) -> None:
        self._open = True
        self._direct = DirectWriter.for_scope(self.websocket.scope)
        params = self.websocket.query_params
        build_greeting = self.registry.fresh_greetings.get(self.spec.topic)
        fresh = await build_greeting() if build_greeting is not None and "since" not in params else None
        self.state.greet(params, fresh=fresh)
        self._flush()
        # Market sessions are reached through the registry's symbol index; the others listen to their topic.
        listening = (contextlib.nullcontext() if self.spec.topic == "market"
                     else self.registry.bus.listen(self.spec.topic, self.offer))
        with listening:
            try:
                await self._read_until_done()
            finally:
                await self._settle()

    async def _read_until_done(self) -> None:
        """Hand client frames to the state until the peer leaves or the socket is closed; keep the idle clock."""
        ws, state, counter = self.websocket, self.state, self.registry.counter
        while not self._done_reading:
            try:
                async with asyncio.timeout_at(state.idle_deadline()) as self._wake:
                    message = await ws.receive()  # cancellation-safe: a timed-out receive loses nothing
            except TimeoutError:
                if state.check_idle():
                    self._flush()
                continue
            finally:
                self._wake = None
            if message["type"] == "websocket.disconnect":
                self._note_close(message.get("code", WS_1005_NO_STATUS_RECEIVED), "client")
                return
            if state.closing:
                continue  # a closing session acts on nothing more; its close frame is on its way
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            counter.add()
            state.receive(raw)
            self._flush()

    async def _settle(self) -> None:
        """Stop what is still writing once reading ended (the peer is gone or the socket closed)."""
        self._open = False
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        helpers = [task for task in (self._drain, self._closer) if task is not None]
        for task in helpers:
            task.cancel()
        if helpers:
            await asyncio.gather(*helpers, return_exceptions=True)
