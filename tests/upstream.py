"""A fake upstream: a real HTTP server (and a tiny WebSocket server) on 127.0.0.1.

Routes serve recorded-shape fixtures or injected faults, changeable at run time, so adapter and
end-to-end tests exercise the real network path (sockets, HTTP/1.1, chunking, timeouts).

    with UpstreamServer() as server:
        server.route("/coingecko/api/v3/coins/markets", fixture_reply("coingecko_markets.json"))
        server.route("/kraken/0/public/Ticker", HANG)
        settings = settings_for(server)          # a SourcesSection: every base URL points at the server

Faults: `HANG` (accept, never answer), `DROP` (close without a response), `ENDLESS` (chunked body
that never ends), `huge(n)` (a Content-Length body of n bytes), `rate_limited(retry_after)`,
`server_error(status)`, `html_page()`, `malformed_json()`, `json_reply(...)` for missing or
mistyped fields, empty lists and absurd values, `fixture_reply("rss_truncated.xml")` for broken
XML, and `closed_url()` for a refused connection. A list of replies is served in order, the last
one repeating (fail, fail, then recover).

Fixtures (`pytest`): `upstream` (HTTP server) and `upstream_stream` (WebSocket server); import
them into a conftest or test module: `from tests.upstream import upstream, upstream_stream`.
"""

from __future__ import annotations

import fnmatch
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from core.config import SourcesSection

__all__ = [
    "DROP",
    "ENDLESS",
    "FIXTURES",
    "HANG",
    "PATHS",
    "Fault",
    "Reply",
    "SeenRequest",
    "UpstreamServer",
    "UpstreamStream",
    "closed_url",
    "fixture_reply",
    "html_page",
    "huge",
    "install_happy_routes",
    "json_reply",
    "load_fixture",
    "malformed_json",
    "rate_limited",
    "server_error",
    "settings_for",
    "upstream",
    "upstream_stream",
]

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"

# A fixed instant for parser tests, so rendered fixtures are byte-for-byte reproducible.
FIXED_NOW = datetime(2025, 12, 8, 10, 30, 0, tzinfo=UTC)

_TOKEN = re.compile(r"\{\{now_(iso|ms|s|rfc822)([+-]\d+)?\}\}")


def render_fixture(text: str, now: datetime | None = None) -> str:
    """Replace `{{now_*}}` placeholders with `now` (default: the real current time)."""
    base = now or datetime.now(UTC)

    def substitute(match: re.Match[str]) -> str:
        moment = base + timedelta(seconds=int(match.group(2) or 0))
        kind = match.group(1)
        if kind == "iso":
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if kind == "ms":
            return str(int(moment.timestamp() * 1000))
        if kind == "s":
            return str(int(moment.timestamp()))
        return format_datetime(moment, usegmt=True)

    return _TOKEN.sub(substitute, text)


def load_fixture(name: str, now: datetime | None = FIXED_NOW) -> bytes:
    """Return a fixture file's bytes with its time placeholders rendered at `now`."""
    return render_fixture((FIXTURES / name).read_text(encoding="utf-8"), now).encode("utf-8")


# -- replies and faults --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A normal HTTP response. `fixture` bodies are rendered with the current time at serve time.

    `etag` / `last_modified` make the route answer 304 to a matching conditional GET.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    fixture: str | None = None
    delay_s: float = 0.0
    etag: str | None = None
    last_modified: str | None = None

    def render_body(self) -> bytes:
        if self.fixture is not None:
            return load_fixture(self.fixture, now=None)
        return self.body


@dataclass(frozen=True)
class Fault:
    """A misbehaving server: `hang`, `drop`, `endless` (chunked forever) or `huge` (declared size)."""

    kind: str
    size: int = 0


HANG = Fault("hang")
DROP = Fault("drop")
ENDLESS = Fault("endless")


def huge(size: int = 50_000_000) -> Fault:
    """A 200 response with a Content-Length of `size` bytes, streamed as fast as the socket takes."""
    return Fault("huge", size)


def json_reply(value: Any, status: int = 200, **kwargs: Any) -> Reply:
    """A JSON body built from `value` (use it for missing/mistyped fields, empty lists, absurd values)."""
    return Reply(status=status, body=json.dumps(value).encode(), **kwargs)


def fixture_reply(name: str, status: int = 200, content_type: str | None = None, **kwargs: Any) -> Reply:
    """A fixture file, its time placeholders rendered when served."""
    if content_type is None:
        content_type = "application/rss+xml" if name.endswith(".xml") else "application/json"
        if name.endswith(".html"):
            content_type = "text/html; charset=utf-8"
    return Reply(status=status, fixture=name, content_type=content_type, **kwargs)


def rate_limited(retry_after: str | None = "30") -> Reply:
    """HTTP 429, with `Retry-After` when given (seconds or an HTTP date)."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = b'{"status":{"error_code":429,"error_message":"rate limited"}}'
    return Reply(status=429, body=body, headers=headers)


def server_error(status: int = 503) -> Reply:
    return Reply(status=status, body=b"upstream temporarily unavailable", content_type="text/plain")


def html_page(status: int = 200) -> Reply:
    """An HTML challenge page where JSON was expected."""
    return fixture_reply("html_error_page.html", status=status)


def malformed_json() -> Reply:
    return Reply(body=b'[{"id": "bitcoin", "current_price": 43250.5,')


def closed_url() -> str:
    """Return an http URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the HTTP server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


Route = Reply | Fault


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        upstream = self.server.upstream
        request = SeenRequest(
            "GET", parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}
        )
        route = upstream._next_route(request)
        if route is None:
            self._send(404, b'{"error":"no route"}', "application/json", {})
        elif isinstance(route, Fault):
            self._fault(route)
        else:
            self._reply(route, request)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; requests are recorded in `UpstreamServer.requests`

    def _reply(self, reply: Reply, request: SeenRequest) -> None:
        if reply.delay_s and self.server.upstream._stopping.wait(reply.delay_s):
            return
        headers = dict(reply.headers)
        if reply.etag:
            headers["ETag"] = reply.etag
        if reply.last_modified:
            headers["Last-Modified"] = reply.last_modified
        sent = request.headers
        matches_etag = reply.etag is not None and sent.get("if-none-match") == reply.etag
        modified = reply.last_modified
        matches_date = modified is not None and sent.get("if-modified-since") == modified
        if matches_etag or matches_date:
            self._send(304, b"", None, headers)
            return
        self._send(reply.status, reply.render_body(), reply.content_type, headers)

    def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str]) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 304:
            self.wfile.write(body)

    def _fault(self, fault: Fault) -> None:
        stopping = self.server.upstream._stopping
        if fault.kind == "hang":
            stopping.wait(60.0)
            self.close_connection = True
        elif fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault.kind in ("endless", "huge"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if fault.kind == "huge":
                self.send_header("Content-Length", str(fault.size))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._stream_forever(fault, stopping)
            self.close_connection = True
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")

    def _stream_forever(self, fault: Fault, stopping: threading.Event) -> None:
        chunk = b"[" + b'{"id":"bitcoin","current_price":1},' * 1800  # ~64 KiB of plausible JSON
        sent = 0
        try:
            while not stopping.is_set() and (fault.kind == "endless" or sent < fault.size):
                if fault.kind == "endless":
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    piece = chunk[: fault.size - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the client cut us off, which is the point


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops bursts of concurrent connects, which then retry after a
    # 1 s SYN timeout and look like a slow upstream.
    request_queue_size = 128
    upstream: UpstreamServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients cutting off hung, endless or dropped responses is the expected outcome of the
        # fault routes, not a server bug worth a traceback on stderr; anything else is.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _ServedOnAThread:
    """Start, stop and `with` for a stand-in server whose loop runs on `self._thread`."""

    _stopping: threading.Event
    _thread: threading.Thread

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging and endless handlers
        self._shut_down()
        self._thread.join(timeout=5)

    def _shut_down(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class UpstreamServer(_ServedOnAThread):
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port and programmable routes.

    Routes match the request path exactly, else the first matching glob (`/coinbase/products/*`).
    Unknown paths answer 404. Every request is recorded in `requests`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, list[Route]] = {}
        self._stopping = threading.Event()
        self.requests: list[SeenRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.upstream = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="upstream-http",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _shut_down(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def route(self, path: str, reply: Route | Sequence[Route]) -> None:
        """Serve `reply` at `path` (a list is served in order, its last item repeating)."""
        replies = [reply] if isinstance(reply, Reply | Fault) else list(reply)
        if not replies:
            raise ValueError("route needs at least one reply")
        with self._lock:
            self._routes[path] = replies

    def clear(self, path: str | None = None) -> None:
        """Remove one route (or all of them)."""
        with self._lock:
            if path is None:
                self._routes.clear()
            else:
                self._routes.pop(path, None)

    def hits(self, path: str) -> int:
        """Return how many requests reached `path` (exact or glob)."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path or fnmatch.fnmatchcase(r.path, path))

    def last_request(self, path: str) -> SeenRequest:
        with self._lock:
            for request in reversed(self.requests):
                if request.path == path:
                    return request
        raise AssertionError(f"no request reached {path}; saw {[r.path for r in self.requests]}")

    def _next_route(self, request: SeenRequest) -> Route | None:
        with self._lock:
            self.requests.append(request)
            replies = self._routes.get(request.path)
            if replies is None:
                path = request.path
                globs = (r for pattern, r in self._routes.items() if fnmatch.fnmatchcase(path, pattern))
                replies = next(globs, None)
            if replies is None:
                return None
            return replies.pop(0) if len(replies) > 1 else replies[0]


# -- the WebSocket server (Binance stream) -------------------------------------------------------


class UpstreamStream(_ServedOnAThread):
    """A WebSocket server that sends `messages` to every client, then holds or closes.

    Args:
        messages: frames to send (str); fixtures are rendered with the current time per send.
        interval_s: pause between frames.
        repeat: loop over `messages` until the client leaves (a live stream).
        then: after the messages, `hold` the connection open or `close` it.
    """

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self.messages: list[str] = []
        self.interval_s = 0.05
        self.repeat = False
        self.then = "hold"
        self.connections = 0
        self._server: Server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, name="upstream-ws", daemon=True)

    @property
    def url(self) -> str:
        port = self._server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws/!miniTicker@arr"

    def _shut_down(self) -> None:
        self._server.shutdown()

    def serve(
        self, messages: Sequence[str], *, interval_s: float = 0.05, repeat: bool = False, then: str = "hold"
    ) -> None:
        self.messages = list(messages)
        self.interval_s = interval_s
        self.repeat = repeat
        self.then = then

    def _handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        try:
            while True:
                for message in list(self.messages):
                    if self._stopping.is_set():
                        return
                    connection.send(render_fixture(message))
                    time.sleep(self.interval_s)
                if not self.repeat:
                    break
            if self.then == "close":
                connection.close()
                return
            while not self._stopping.wait(0.05):
                pass
        except Exception:
            return  # the client went away


# -- wiring helpers ------------------------------------------------------------------------------

# Where each provider lives on the fake server (base URL = server.url + prefix).
PATHS = {
    "coingecko": "/coingecko/api/v3/coins/markets",
    "binance": "/binance/api/v3/ticker/24hr",
    "kraken": "/kraken/0/public/Ticker",
    "coinbase_btc": "/coinbase/products/BTC-USD/stats",
    "coinbase_eth": "/coinbase/products/ETH-USD/stats",
    "coinbase_any": "/coinbase/products/*/stats",
    "coinpaprika": "/coinpaprika/v1/tickers",
    "coinlore": "/coinlore/api/tickers/",
    "fng": "/fng/fng/",
    "reddit_cc": "/reddit/r/CryptoCurrency/new.json",
    "reddit_btc": "/reddit/r/Bitcoin/new.json",
    "cryptopanic": "/cryptopanic/api/developer/v2/posts/",
    "cryptocompare": "/cryptocompare/data/v2/news/",
    "twitter": "/twitter/2/tweets/search/recent",
    "feed_coindesk": "/feeds/coindesk.xml",
    "feed_cointelegraph": "/feeds/cointelegraph.xml",
    "feed_bitcoinmagazine": "/feeds/bitcoinmagazine.xml",
}


def install_happy_routes(server: UpstreamServer) -> None:
    """Serve every provider's documented-format fixture at its path."""
    server.route(PATHS["coingecko"], fixture_reply("coingecko_markets.json"))
    server.route(PATHS["binance"], fixture_reply("binance_ticker_24hr.json"))
    server.route(PATHS["kraken"], fixture_reply("kraken_ticker.json"))
    server.route(PATHS["coinbase_btc"], fixture_reply("coinbase_stats_btc.json"))
    server.route(PATHS["coinbase_eth"], fixture_reply("coinbase_stats_eth.json"))
    server.route(PATHS["coinbase_any"], fixture_reply("coinbase_not_found.json", status=404))
    server.route(PATHS["coinpaprika"], fixture_reply("coinpaprika_tickers.json"))
    server.route(PATHS["coinlore"], fixture_reply("coinlore_tickers.json"))
    server.route(PATHS["fng"], fixture_reply("fng.json"))
    server.route(PATHS["reddit_cc"], fixture_reply("reddit_cryptocurrency_new.json"))
    server.route(PATHS["reddit_btc"], fixture_reply("reddit_bitcoin_new.json"))
    server.route(PATHS["cryptopanic"], fixture_reply("cryptopanic_posts.json"))
    server.route(PATHS["cryptocompare"], fixture_reply("cryptocompare_news.json"))
    server.route(PATHS["twitter"], fixture_reply("twitter_search_recent.json"))
    server.route(PATHS["feed_coindesk"], fixture_reply("rss_coindesk.xml", etag='"cd-1"'))
    server.route(PATHS["feed_cointelegraph"], fixture_reply("rss_cointelegraph.xml"))
    atom = fixture_reply("atom_feed.xml", content_type="application/atom+xml")
    server.route(PATHS["feed_bitcoinmagazine"], atom)


def settings_for(
    server: UpstreamServer, stream: UpstreamStream | None = None, **overrides: Any
) -> SourcesSection:
    """Return the sources' settings with every base URL on `server` (and the stream on `stream`, else off).

    Budgets are off (`sources_budget_scale=0`) so every round calls every provider; override as needed.
    """
    base = server.url
    values: dict[str, Any] = {
        "coingecko_url": f"{base}/coingecko/api/v3",
        "binance_url": f"{base}/binance",
        "binance_ws_url": stream.url if stream is not None else "ws://127.0.0.1:9/unused",
        "binance_ws_enabled": stream is not None,
        "kraken_url": f"{base}/kraken",
        "coinbase_url": f"{base}/coinbase",
        "coinpaprika_url": f"{base}/coinpaprika/v1",
        "coinlore_url": f"{base}/coinlore/api",
        "fng_url": f"{base}/fng",
        "reddit_url": f"{base}/reddit",
        "cryptopanic_url": f"{base}/cryptopanic/api/developer/v2",
        "cryptocompare_url": f"{base}/cryptocompare",
        "twitter_url": f"{base}/twitter/2",
        "news_feeds": (
            f"{base}{PATHS['feed_coindesk']}",
            f"{base}{PATHS['feed_cointelegraph']}",
            f"{base}{PATHS['feed_bitcoinmagazine']}",
        ),
        "market_poll_s": 0.05,
        "news_poll_s": 0.05,
        "fng_poll_s": 0.05,
        "social_poll_s": 0.05,
        "sources_budget_scale": 0.0,
        "sources_backoff_s": 0.2,
        "sources_max_backoff_s": 1.0,
    }
    values.update(overrides)
    return SourcesSection(**values)


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    """A running fake upstream with no routes (see `install_happy_routes`)."""
    with UpstreamServer() as server:
        yield server


@pytest.fixture
def upstream_stream() -> Iterator[UpstreamStream]:
    """A running fake Binance stream that sends nothing until `serve()` is called."""
    with UpstreamStream() as stream:
        yield stream
