"""The REST guard: per-client rate limits, the admin check and the body limit, before any body byte is read.

An ASGI middleware in front of every REST route (the UI's own traffic is exempt), in this order:

1. A token bucket per client IP (`REST_RATE_PER_S`, `REST_BURST`); an empty bucket answers 429 with
   `Retry-After`. Requests that carry the valid admin token are not counted: they are the operator.
2. `POST /api/news` without the valid admin token answers 401 (403 when ingestion is disabled)
   from the headers alone, so an anonymous client cannot make the server read or parse its body.
3. Bodies are limited while they are read (`MAX_BODY_BYTES`, Starlette's limiter): a declared
   `Content-Length` above it answers 413 before the body is read, a longer chunked body is cut off
   at the limit with 413. Nothing larger than the limit is ever buffered.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core.token_bucket import TokenBucket

__all__ = ["AdminRefusal", "RestGuard", "admin_refusal"]

INGEST_PATH = "/api/news"


@dataclass(frozen=True)
class AdminRefusal:
    """Why a request is not the operator's: its status, message and headers."""

    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


def admin_refusal(expected: SecretStr | None, authorization: str | None) -> AdminRefusal | None:
    """Return why `authorization` does not carry the admin token, or None when it does."""
    if expected is None or not expected.get_secret_value():
        return AdminRefusal(403, "News ingestion is disabled: set ADMIN_TOKEN on the server to enable it")
    offered = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(offered.encode(), expected.get_secret_value().encode()):
        return AdminRefusal(401, "Missing or wrong token: send Authorization: Bearer <ADMIN_TOKEN>",
                            {"WWW-Authenticate": "Bearer"})
    return None


class RestGuard:
    """ASGI middleware: rate limit per client, admin check of ingestion, body limit (see the module doc).

    Args:
        rate_per_s: tokens per second per client IP; 0 turns rate limiting off.
        burst: requests a client may make at once.
        max_body_bytes: the largest request body read.
        admin_token: the operator's token (`ADMIN_TOKEN`); None disables ingestion.
        exempt_prefixes: paths the guard leaves alone (the UI's own assets and polling).
        max_clients: client buckets kept; the least recently seen is forgotten beyond it (memory is bounded).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate_per_s: float,
        burst: int,
        max_body_bytes: int,
        admin_token: SecretStr | None,
        exempt_prefixes: tuple[str, ...] = (),
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limited = RequestBodyLimitMiddleware(app, max_body_size=max_body_bytes)
        self.interval_s = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self.burst = burst
        self.admin_token = admin_token
        self.exempt_prefixes = exempt_prefixes
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.refused = 0  # 429s answered, for tests and logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        refusal = admin_refusal(self.admin_token, authorization)
        if refusal is not None:  # not the operator: the client's bucket pays for it
            wait_s = self._take(scope)
            if wait_s is not None:
                self.refused += 1
                retry = max(1, math.ceil(wait_s))
                await JSONResponse(
                    {"detail": f"Too many requests: at most {self.burst} at once and "
                               f"{1 / self.interval_s:g} per second per client; retry after {retry} s"},
                    status_code=429, headers={"Retry-After": str(retry)},
                )(scope, receive, send)
                return
            if scope["method"] == "POST" and scope["path"].rstrip("/") == INGEST_PATH:
                await JSONResponse({"detail": refusal.detail}, status_code=refusal.status,
                                   headers=refusal.headers)(scope, receive, send)
                return
        await self.limited(scope, receive, send)

    def _take(self, scope: Scope) -> float | None:
        """Take a token from the client's bucket; return the wait when it is empty, else None."""
        if self.interval_s == 0:
            return None
        client = scope.get("client")
        key = client[0] if client else "unknown"
        bucket = self._buckets.pop(key, None) or TokenBucket(self.interval_s, self.burst)
        self._buckets[key] = bucket  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        now = self.clock()
        if bucket.try_acquire(now):
            return None
        return bucket.seconds_until_token(now)
