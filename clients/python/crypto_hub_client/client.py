"""The Python client of the five streams: auto-reconnect with resume, a heartbeat watchdog, a clean close.

    async with HubClient.for_stream("news", keywords=["bitcoin"]) as client:
        async for message in client:
            print(message["type"], message.get("seq"))

After every (re)connect the client sends its subscription (`subscribe`) and filter (`filter`) again, and
asks the server to replay what it missed with `?since=<last seq>&epoch=<epoch>`. Messages it has already
seen (same epoch, `seq` not newer) are dropped, so a lossless stream (news) arrives exactly once and in
`seq` order across reconnects and server restarts. Reconnects wait with capped exponential backoff and full
jitter. `python -m crypto_hub_client news --keywords bitcoin` prints a stream as JSON lines (see __main__.py).

Errors:

    HubClientError
     ├── ClientClosed          recv() on a client that was closed
     └── ConnectionRejected    the server refused us for good (HTTP 4xx, close 1008...): not retried
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.frames import CloseCode
from websockets.protocol import State

from crypto_hub_client.endpoints import STREAM_PATHS
from crypto_hub_client.resume import Backoff, ClientStats, ResumeState

logger = logging.getLogger("crypto_hub_client")

DEFAULT_BASE_URL = "ws://127.0.0.1:7860"

# Close codes after which reconnecting cannot help: the server judged what we send, not its own state.
FATAL_CLOSE_CODES = frozenset({
    CloseCode.PROTOCOL_ERROR,
    CloseCode.UNSUPPORTED_DATA,
    CloseCode.INVALID_DATA,
    CloseCode.POLICY_VIOLATION,  # bad token, refused origin, abuse
    CloseCode.MESSAGE_TOO_BIG,
    CloseCode.MANDATORY_EXTENSION,
})


class HubClientError(Exception):
    """Base of the client's errors."""


class ClientClosed(HubClientError):
    """The client was closed; no more messages will come."""


class ConnectionRejected(HubClientError):
    """The server refused this client in a way that retrying cannot fix."""

    def __init__(self, message: str, *, close_code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.status = status


class ConnectionState(StrEnum):
    """Where the client's connection stands."""

    CONNECTING = "connecting"
    OPEN = "open"
    BACKING_OFF = "backing_off"  # waiting `delay` seconds before the next attempt
    CLOSED = "closed"  # closed by `close()`, or given up after a rejection


@dataclass(frozen=True)
class StateChange:
    """One transition, as handed to `on_state_change`."""

    state: ConnectionState
    attempt: int = 0  # failed attempts since the last stable connection
    delay: float | None = None  # BACKING_OFF: seconds until the next attempt
    close_code: int | None = None  # of the connection that just ended, if any
    reason: str = ""  # why the previous connection ended or the attempt failed


def stream_url(stream: str, base_url: str = DEFAULT_BASE_URL) -> str:
    """Return the endpoint URL of `stream` (status, market, news, sentiment, models) under `base_url`."""
    try:
        path = STREAM_PATHS[stream]
    except KeyError:
        raise ValueError(f"unknown stream {stream!r}, expected one of {', '.join(STREAM_PATHS)}") from None
    return base_url.rstrip("/") + path


class _WatchedConnection(ClientConnection):
    """Records when the last frame of any kind (data, ping or pong) arrived, for the heartbeat watchdog."""

    last_heard: float = 0.0

    def process_event(self, event: Any) -> None:
        self.last_heard = self.loop.time()
        super().process_event(event)


class HubClient:
    """A self-healing connection to one hub endpoint, read as an async iterator of JSON messages.

    Args:
        url: the endpoint, e.g. `ws://127.0.0.1:7860/ws/news` (see `for_stream`).
        symbols: market symbols to subscribe to on every connect (/ws/market_data only).
        keywords, sources: news filter to send on every connect (/ws/news only).
        token: API token, sent as `Authorization: Bearer`.
        since, epoch: resume from a position saved by an earlier run (`last_seq`, `epoch`).
        backoff: reconnect delays; `rng` draws their jitter (seed it in tests).
        ping_interval, ping_timeout: protocol keepalive pings, handled by websockets.
        heartbeat_timeout: drop and reconnect when no frame at all (message, ping or pong) arrived
            for this long; `None` disables the watchdog. Must exceed `ping_interval`.
        stable_after_s: a connection that lived this long resets the backoff to its first step.
        max_pending: messages buffered for a slow reader; when full the client stops reading the socket,
            the server eventually closes it as a slow consumer and the client resumes from `seq`.
        on_state_change: called (synchronously, must not block) with every `StateChange`.
        filter_locally: also apply the news filter here, because the server replays missed news
            before the re-sent `filter` reaches it.

    Trade-off: delivery is at-least-once on the wire and exactly-once to the reader only within an
    epoch and the server's retained history; a `HISTORY_GAP` error message tells the reader otherwise.
    """

    def __init__(
        self,
        url: str,
        *,
        symbols: Iterable[str] | None = None,
        keywords: Iterable[str] | None = None,
        sources: Iterable[str] | None = None,
        token: str | None = None,
        since: int | None = None,
        epoch: str | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        heartbeat_timeout: float | None = 45.0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        stable_after_s: float = 5.0,
        max_pending: int = 1024,
        max_size: int | None = 4 * 1024 * 1024,
        on_state_change: Callable[[StateChange], None] | None = None,
        filter_locally: bool = True,
    ) -> None:
        if urlsplit(url).scheme not in ("ws", "wss"):
            raise ValueError(f"expected a ws:// or wss:// URL, got {url!r}; hint: use HubClient.for_stream()")
        self._resume = ResumeState(url, symbols=symbols, keywords=keywords, sources=sources, since=since,
                                   epoch=epoch, backoff=backoff, rng=rng, filter_locally=filter_locally)
        if heartbeat_timeout is not None and ping_interval is not None and heartbeat_timeout <= ping_interval:
            raise ValueError(
                f"heartbeat_timeout must exceed ping_interval ({ping_interval}s), got {heartbeat_timeout}s; "
                "pongs are what keeps a quiet stream alive"
            )
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.url = url
        self.token = token
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.stable_after_s = stable_after_s
        self.max_size = max_size
        self.on_state_change = on_state_change
        self._pending: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_pending)
        self._state = ConnectionState.CLOSED
        self._connected = asyncio.Event()
        self._conn: _WatchedConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closed_by_user = False

    @classmethod
    def for_stream(cls, stream: str, base_url: str = DEFAULT_BASE_URL, **options: Any) -> HubClient:
        """Return a client of `stream` (status, market, news, sentiment, models) under `base_url`."""
        return cls(stream_url(stream, base_url), **options)

    # ------------------------------------------------------------ public state

    @property
    def state(self) -> ConnectionState:
        """Return the connection's current state."""
        return self._state

    @property
    def last_seq(self) -> int:
        """Return the newest `seq` seen (0 before any); save it with `epoch` to resume in a later run."""
        return self._resume.last_seq

    @property
    def epoch(self) -> str | None:
        """Return the epoch of the stream seen last."""
        return self._resume.epoch

    @property
    def symbols(self) -> set[str]:
        """Return the market symbols sent on every connect."""
        return self._resume.symbols

    @property
    def keywords(self) -> tuple[str, ...]:
        """Return the news keywords sent on every connect."""
        return self._resume.keywords

    @property
    def sources(self) -> tuple[str, ...] | None:
        """Return the news sources sent on every connect."""
        return self._resume.sources

    @property
    def backoff(self) -> Backoff:
        """Return the reconnect delays."""
        return self._resume.backoff

    @property
    def stats(self) -> ClientStats:
        """Return the counters of this client's life."""
        return self._resume.stats

    @property
    def filter_locally(self) -> bool:
        """Return whether news outside the filter is dropped here too."""
        return self._resume.filter_locally

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> HubClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._runner is not None:
            raise HubClientError("client already started; a HubClient runs once")
        self._runner = asyncio.create_task(self._run(), name=f"hub-client {self.url}")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the connection is open (raising the client's error if it gave up)."""
        runner = self._require_runner()
        async with asyncio.timeout(timeout):
            waiter = asyncio.ensure_future(self._connected.wait())
            try:
                await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        if not self._connected.is_set():
            self._raise_runner_outcome(runner)

    async def close(self) -> None:
        """Close the connection (1000) and stop reconnecting; iteration ends."""
        self._closed_by_user = True
        runner = self._runner
        if runner is None:
            return
        conn = self._conn
        if conn is not None and not runner.done():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.close_timeout):
                    await conn.close(CloseCode.NORMAL_CLOSURE, "client closing")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    # ------------------------------------------------------------ reading

    def __aiter__(self) -> HubClient:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await self.recv()
        except ClientClosed:
            raise StopAsyncIteration from None

    async def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """Return the next message, waiting at most `timeout` seconds.

        Raises:
            ClientClosed: the client was closed.
            ConnectionRejected: the server refused the client for good (after its last messages).
            TimeoutError: nothing arrived within `timeout`.
        """
        runner = self._require_runner()
        async with asyncio.timeout(timeout):
            while True:
                if self._closed_by_user:
                    raise ClientClosed("the client was closed")
                if not self._pending.empty():
                    return self._pending.get_nowait()
                if runner.done():
                    self._raise_runner_outcome(runner)
                getter = asyncio.ensure_future(self._pending.get())
                try:
                    await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not getter.done():
                        getter.cancel()
                if getter.done() and not getter.cancelled():
                    if self._closed_by_user:
                        raise ClientClosed("the client was closed")
                    return getter.result()

    # ------------------------------------------------------------ sending

    async def subscribe(self, symbols: Iterable[str]) -> None:
        """Add market symbols; they are sent now if connected and again after every reconnect."""
        for request in self._resume.subscribe(symbols):
            await self._send_now(request)

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        """Remove market symbols."""
        for request in self._resume.unsubscribe(symbols):
            await self._send_now(request)

    async def set_filter(self, keywords: Iterable[str], sources: Iterable[str] | None = None) -> None:
        """Replace the news filter (empty keywords and no sources: every item)."""
        await self._send_now(self._resume.set_filter(keywords, sources))

    async def get_all(self) -> bool:
        """Ask for the latest price of every symbol; return False (sending nothing) when disconnected."""
        return await self._send_now({"action": "get_all"})

    async def ping(self) -> bool:
        """Send an application-level `ping` (the server answers `pong`); False when disconnected."""
        return await self._send_now({"type": "ping"})

    # ------------------------------------------------------------ internals

    def _require_runner(self) -> asyncio.Task[None]:
        if self._runner is None:
            raise HubClientError("client not started: use `async with HubClient(...)` or `await start()`")
        return self._runner

    def _raise_runner_outcome(self, runner: asyncio.Task[None]) -> None:
        if not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]
        raise ClientClosed("the client is closed")

    async def _send_now(self, request: dict[str, Any]) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            await conn.send(json.dumps(request))
        except ConnectionClosed:
            return False  # state is kept; the next connection sends it again
        return True

    def _set_state(self, change: StateChange) -> None:
        self._state = change.state
        if change.state is ConnectionState.OPEN:
            self._connected.set()
        else:
            self._connected.clear()
        logger.info("client %s: %s%s", self.url, change.state.value,
                    f" ({change.reason})" if change.reason else "")
        if self.on_state_change is not None:
            try:
                self.on_state_change(change)
            except Exception:
                logger.exception("client %s: on_state_change callback failed", self.url)

    async def _run(self) -> None:
        loop, resume = asyncio.get_running_loop(), self._resume
        close_code: int | None = None
        reason = ""
        try:
            while True:
                self._set_state(StateChange(ConnectionState.CONNECTING, resume.attempt, None, close_code, reason))
                try:
                    conn = await self._open()
                except (OSError, TimeoutError, WebSocketException) as exc:
                    close_code, reason = None, f"connect failed: {type(exc).__name__}: {exc}"[:300]
                else:
                    opened_at = loop.time()
                    close_code, reason = await self._serve(conn)
                    if self._closed_by_user:
                        return
                    resume.ended(loop.time() - opened_at, self.stable_after_s)
                delay = resume.next_delay()
                self._set_state(StateChange(ConnectionState.BACKING_OFF, resume.attempt, delay, close_code, reason))
                await asyncio.sleep(delay)
        except ConnectionRejected as exc:
            close_code, reason = exc.close_code, str(exc)
            raise
        finally:
            self._set_state(StateChange(ConnectionState.CLOSED, resume.attempt, None, close_code, reason))

    async def _open(self) -> _WatchedConnection:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            conn = await connect(
                self._resume.resume_url(),
                additional_headers=headers,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=self.close_timeout,
                max_size=self.max_size,
                create_connection=_WatchedConnection,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status < 500 and status != 429:
                raise ConnectionRejected(
                    f"server answered HTTP {status} to the WebSocket handshake; check the URL and path "
                    f"(endpoints: {', '.join(STREAM_PATHS.values())})", status=status
                ) from exc
            raise
        except InvalidURI as exc:
            raise ConnectionRejected(f"invalid URL {self.url!r}: {exc}") from exc
        assert isinstance(conn, _WatchedConnection)
        conn.last_heard = conn.loop.time()
        return conn

    async def _serve(self, conn: _WatchedConnection) -> tuple[int | None, str]:
        """Run one open connection until it ends; return its close code and why it ended."""
        self._conn = conn
        self._resume.connected()
        reason = ""
        try:
            for request in self._resume.connect_requests():
                await conn.send(json.dumps(request))
            self._set_state(StateChange(ConnectionState.OPEN))
            reason = await self._pump(conn)
        except ConnectionClosed:
            pass
        finally:
            self._conn = None
            if conn.state is not State.CLOSED:
                conn.transport.abort()
                await asyncio.shield(conn.wait_closed())
        code = conn.close_code
        if self._closed_by_user:
            return code, "closed by the client"
        reason = reason or f"connection closed: {code} {conn.close_reason or ''}".strip()
        if code in FATAL_CLOSE_CODES:
            raise ConnectionRejected(
                f"server closed the connection with {code} ({conn.close_reason or 'no reason'}); "
                "not retrying: fix the token, origin or messages first", close_code=code
            )
        return code, reason

    async def _pump(self, conn: _WatchedConnection) -> str:
        """Move messages from the socket to the reader's queue, watching for silence."""
        loop = conn.loop
        while True:
            if self.heartbeat_timeout is None:
                raw = await conn.recv()
            else:
                left = self.heartbeat_timeout - (loop.time() - conn.last_heard)
                if left <= 0:
                    self.stats.heartbeat_timeouts += 1
                    logger.warning("client %s: nothing heard for %.1fs; dropping the connection",
                                   self.url, self.heartbeat_timeout)
                    conn.transport.abort()  # the peer is gone or stuck: a closing handshake would only wait
                    return f"heartbeat timeout: nothing heard for {self.heartbeat_timeout:g}s"
                try:
                    async with asyncio.timeout(left):
                        raw = await conn.recv()  # cancellation-safe: a timed-out recv loses nothing
                except TimeoutError:
                    continue  # re-check: pings and pongs count as activity too
            message = self._resume.accept(raw)
            if message is not None:
                await self._pending.put(message)
                conn.last_heard = max(conn.last_heard, loop.time())  # a slow reader is not a silent server

