"""The Space's entry point: `create_app()` builds the FastAPI app; `python app.py` serves it on $PORT.

`compose.py` builds the components; here each router is built with the ones it serves from, the
middleware is put in front and the lifespan starts and stops the runtime. Routes are registered
first and Gradio is mounted at `/` last, because a mount at `/` swallows every route registered after it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from core.config import ConfigError, Settings


def _load_settings() -> Settings:
    """Read the settings from the environment, the one read of it; a bad value ends the process (exit 2)."""
    try:
        return Settings.from_env(os.environ)
    except ConfigError as exc:
        _refuse_configuration(exc)


def _refuse_configuration(exc: ConfigError) -> NoReturn:
    # A configuration mistake is the operator's to fix: say which variables, without a traceback.
    print(f"app: {exc}", file=sys.stderr)
    raise SystemExit(2) from None


# `python app.py` reads its settings before the app's own imports (a second and more of CPU on a small
# Space), so a bad value ends the start at once; the imports below come after it on purpose (E402).
_settings_at_start = _load_settings() if __name__ == "__main__" else None

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api import (
    MetricsCollector,
    RestGuard,
    build_asyncapi_router,
    build_inference_router,
    build_market_router,
    build_metrics_router,
    build_models_admin_router,
    build_news_router,
    http_error,
    validation_error,
)
from api.guard import UI_ASSET_PREFIXES
from compose import Components, compose, screen_parts
from core.client_address import PRIVATE_NETWORKS, ClientAddress, TrustedProxies
from core.counters import RequestCounter
from core.gcwatch import GcPacer, tune_gc
from core.lane import RETRY_AFTER_S
from core.log_context import LogContext
from core.logs import configure_logging
from core.protocol import CloseCode
from core.version import VERSION
from space.routes import build_space_router
from ws.direct import KeepRawSend
from ws.routes import build_ws_router
from ws.session import SocketRegistry
from ws.upgrade import http_protocol, websocket_protocol

__all__ = ["app", "build_app", "create_app", "main"]

logger = logging.getLogger("app")

app: FastAPI  # declared, not built: `__getattr__` builds it on first use (`uvicorn app:app`)

# Frames above this are refused by the server itself (1009); frames between MAX_FRAME_BYTES and this
# get a MESSAGE_TOO_LARGE error and the connection stays open.
WS_HARD_MAX_BYTES = 1024 * 1024


UI_INTERNAL_PREFIXES = ("/gradio_api/", "/assets/", "/static/", "/theme.css", "/favicon")


class CountRequests:
    """ASGI middleware counting HTTP requests for `requests_last_minute/hour` (sockets count themselves)."""

    def __init__(self, app: ASGIApp, counter: RequestCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Gradio's own polling and assets are the UI talking to itself, not API requests.
        if scope["type"] == "http" and not scope["path"].startswith(UI_INTERNAL_PREFIXES):
            self.counter.add()
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app from `settings` (or those of the environment): REST and WebSocket routes, then the UI at `/`."""
    return build_app(compose(settings or Settings.from_env(os.environ)))


def build_app(parts: Components) -> FastAPI:
    """Build the app on composed components: each router gets the ones it serves from."""
    settings, runtime, sockets, lane = parts.settings, parts.runtime, parts.sockets, parts.lane

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await sockets.close_all(CloseCode.WS_1001_GOING_AWAY)
            await runtime.stop()
            lane.shutdown()

    app = FastAPI(
        title="Crypto Market Hub",
        version=VERSION,
        description="Live crypto prices, scored news, market sentiment and model status over WebSockets. "
        "See the README's protocol reference and /asyncapi.json.",
        lifespan=lifespan,
    )
    # Added first so it runs inside CountRequests: refused requests are still counted.
    scoring_ids: set[int] = set()  # the UI's scoring events (fn_index, api_name), known once it is built below
    scoring_names: set[str] = set()

    def scoring_busy(fn_index: int | None, api_name: str | None) -> float | None:
        named = fn_index in scoring_ids or api_name in scoring_names
        return RETRY_AFTER_S if named and lane.is_full else None

    app.add_middleware(
        RestGuard, budgets=parts.budgets, max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes, admin_token=settings.admin_token,
        exempt_prefixes=UI_ASSET_PREFIXES, scoring_busy=scoring_busy,
    )
    app.add_middleware(CountRequests, counter=parts.counter)
    # Inside ClientAddress: the id, path and resolved client that every line logged meanwhile carries.
    app.add_middleware(LogContext)
    # Outside the guard and the sockets: every layer inside reads the same client address.
    app.add_middleware(ClientAddress, trusted=TrustedProxies(settings.trusted_proxies), watch=parts.client_watch)
    if settings.ws_direct_writes:
        app.add_middleware(KeepRawSend)  # outermost: lets sockets write frames without the ASGI layers (ws/direct.py)
    app.include_router(build_market_router(
        market=parts.market, bus=parts.bus, store=parts.store, symbols=settings.symbols,
        data_mode=settings.data_mode, agent_running=lambda: runtime.agent_running, query=runtime.query_store,
    ))
    app.include_router(build_news_router(news=parts.news, store=parts.store, query=runtime.query_store,
                                         admin_token=settings.admin_token))
    app.include_router(build_models_admin_router(inference=parts.inference, admin_token=settings.admin_token))
    app.include_router(build_inference_router(parts.inference, lane=lane))
    app.include_router(build_ws_router(sockets))
    app.include_router(build_metrics_router(MetricsCollector(
        sockets=sockets, counter=parts.counter, bus=parts.bus, store=parts.store, news=parts.news, runtime=runtime,
        feeds=parts.feeds, cluster=parts.cluster, gc_watch=parts.gc_watch,
    )))
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.include_router(build_asyncapi_router())
    app.include_router(build_space_router(settings.symbols))
    if settings.enable_ui:
        import gradio as gr

        from space.ui import build_ui, scoring_events as events_of

        ui = build_ui(screen_parts(parts))
        ids, names = events_of(ui)
        scoring_ids.update(ids)
        scoring_names.update(names)
        app = gr.mount_gradio_app(app, ui, path="/", max_file_size=settings.max_upload_bytes)
    return app


def _server(app: FastAPI, registry: SocketRegistry, settings: Settings) -> Any:
    import uvicorn

    pacer = GcPacer(
        settings.gc_pace_ms / 1000,
        full_every_s=settings.gc_full_every_s,
        turnover=lambda: registry.stats.sessions_ended,
        full_after=settings.gc_full_after_closes,
        freeze_survivors=settings.gc_freeze_survivors,
    ) if settings.gc_pace_ms else None

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            if pacer is not None:
                pacer.stop()
            # Close our sockets with 1001 (going away) before uvicorn closes the rest with 1012.
            await registry.close_all(CloseCode.WS_1001_GOING_AWAY)
            await super().shutdown(sockets)

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            # Start-up is done (lifespan ran, the port listens) and no client is served yet: what
            # lives now lives for the whole process, so GC_FREEZE takes it out of full collections.
            tune_gc(settings.gc_threshold, settings.gc_freeze)
            if pacer is not None:
                pacer.start(asyncio.get_running_loop())

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws=websocket_protocol(),
        http=http_protocol(),
        ws_max_size=WS_HARD_MAX_BYTES,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_interval_s,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        loop=_event_loop(settings.server_loop),
        timeout_graceful_shutdown=5,
        log_config=None,
        # X-Forwarded-For is read once, by ClientAddress (core/client_address.py), which also watches for
        # the case where every client arrives from one address.
        proxy_headers=False,
    )
    return Server(config)


def _compose_or_refuse(settings: Settings) -> Components:
    """Build the components; a setting refused only once its context is known (INFERENCE_PRECISION against
    the device DEVICE=auto chose) ends the start the same way as a bad value (one line, exit 2)."""
    try:
        return compose(settings)
    except ConfigError as exc:
        _refuse_configuration(exc)


def _event_loop(choice: str) -> str:
    # uvicorn's "auto" takes uvloop when installed; an explicit "uvloop" without it falls back too,
    # because a missing optional speed-up must not keep the Space from starting.
    if choice == "uvloop" and importlib.util.find_spec("uvloop") is None:
        logger.warning("app: SERVER_LOOP=uvloop but uvloop is not installed; using asyncio")
        return "asyncio"
    return choice


def _shared_socket(host: str, port: int) -> socket.socket:
    """Bind host:port with SO_REUSEPORT, so several app processes listen on one port (the kernel
    spreads new connections over them; docs/scaling.md)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _check_trusted_proxies(settings: Settings) -> None:
    """Say whose X-Forwarded-For is believed; warn when a Space's proxy would not be (docs/limits.md)."""
    logger.info("app: X-Forwarded-For believed from %s", ",".join(settings.trusted_proxies) or "no one")
    trusted = TrustedProxies(settings.trusted_proxies)
    if settings.space_id and not all(network.split("/")[0] in trusted for network in PRIVATE_NETWORKS):
        logger.warning(
            "app: on a Space, but TRUSTED_PROXIES (%s) leaves out the private networks the Space's proxy "
            "connects from: every visitor may count as one client. Unset TRUSTED_PROXIES for the Space "
            "default, or watch system_status.clients", ",".join(settings.trusted_proxies) or "empty")


def main(settings: Settings | None = None) -> None:
    """Run the app with uvicorn on $HOST:$PORT (0.0.0.0:7860), with `settings` or those of the environment."""
    settings = settings or _load_settings()
    configure_logging(settings.log_level, settings.log_file, settings.log_json)
    _check_trusted_proxies(settings)
    parts = _compose_or_refuse(settings)
    server = _server(build_app(parts), parts.sockets, settings)
    logger.info(
        "app: serving on port %s (data mode %s, loop %s%s)", settings.port, settings.data_mode,
        server.config.loop, ", port shared (SO_REUSEPORT)" if settings.reuse_port else "",
    )
    # uvicorn's own start builds the event loop from `loop` (uvloop when installed).
    sockets = [_shared_socket(server.config.host, settings.port)] if settings.reuse_port else None
    server.run(sockets=sockets)


def __getattr__(name: str) -> Any:
    # `uvicorn app:app` imports this attribute; build it lazily so importing the module has no side effects.
    if name == "app":
        settings = _load_settings()
        configure_logging(settings.log_level, settings.log_file, settings.log_json)
        built = build_app(_compose_or_refuse(settings))
        globals()["app"] = built
        return built
    raise AttributeError(name)


if __name__ == "__main__":
    main(_settings_at_start)
