"""The REST guard: per-client rate limits, the admin check and the body limit, before any body byte is read.

An ASGI middleware in front of every route but the UI's static assets, in this order:

1. A token bucket per client IP (`REST_RATE_PER_S`, `REST_BURST`, `core.token_bucket.ClientBudgets`);
   an empty bucket answers 429 with `Retry-After` and the REST error shape (`core/rest.py`; the
   UI's API gets Gradio's own, a `detail` string). Requests that carry the
   valid admin token are not counted: they are the operator. What a request costs:
   - a REST request, a page load: one token (a route whose cost is in its body charges the rest
     itself through `scope["state"]["rate_account"]`: `POST /api/sentiment` pays one per text);
   - an event of the UI's API (`/gradio_api/queue/join`, `/call/`, `/run/`, `/api/`):
     `UI_EVENT_COST`, a tenth of a token, since a visitor's own page polls about twice a second;
     a scoring event pays its real cost in its handler (`space/playground.py`);
   - an upload (`/gradio_api/upload`): one token;
   - the UI's other API requests (the event stream, heartbeats, file reads): nothing.
2. `POST /api/news` without the valid admin token answers 401 (403 when ingestion is disabled)
   from the headers alone, so an anonymous client cannot make the server read or parse its body.
3. A scoring event of the UI's API (`score_text`) while the anonymous scoring lane is full answers
   503 with `Retry-After` and a JSON `detail` at once (gradio_client: "Queue is full! Please try
   again."): a refusal then costs one small exchange instead of a whole Gradio event. The event is
   named by the path (`/call/<name>`) or by the join's small JSON body, read for it (and replayed).
4. Bodies are limited while they are read (`MAX_BODY_BYTES`, `MAX_UPLOAD_BYTES` for uploads,
   Starlette's limiter): a declared `Content-Length` above it answers 413 before the body is read,
   a longer chunked body is cut off at the limit with 413 (`BODY_TOO_LARGE`; the UI's API gets
   Starlette's plain-text one). Nothing larger is ever buffered.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import HTTPException
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.rest import RestErrorCode, error_detail
from core.token_bucket import ClientAccount, ClientBudgets, retry_after_s

__all__ = [
    "INGEST_FEATURE",
    "UI_API_PREFIX",
    "UI_ASSET_PREFIXES",
    "UI_EVENT_COST",
    "AdminRefusal",
    "RestGuard",
    "admin_refusal",
    "require_admin",
]

INGEST_PATH = "/api/news"
INGEST_FEATURE = "News ingestion"  # what the admin token guards there, for the 403 without one
UI_API_PREFIX = "/gradio_api/"
# The UI's static files: the same for every visitor, served without reading a body.
UI_ASSET_PREFIXES = ("/assets/", "/static/", "/theme.css", "/favicon")
UI_UPLOAD_PATH = "/gradio_api/upload"
# Routes that start an event (a queued function call); `/call/` also covers `/call/v2/`.
UI_EVENT_PREFIXES = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")
# A visitor's page sends about two events a second (the 1 s pulse and its tab's timer) and six at
# load: at a tenth of a token each, even ten visitors behind one address stay far inside the budget.
UI_EVENT_COST = 0.1
UI_JOIN_PATH = "/gradio_api/queue/join"
UI_CALL_PREFIX = "/gradio_api/call/"

# Given a UI event (its fn_index, or the api_name of a `/call/` path), the wait before a scoring
# event has a chance, or None when it may go on.
ScoringBusy = Callable[[int | None, str | None], float | None]


@dataclass(frozen=True)
class AdminRefusal:
    """Why a request is not the operator's: its status, message and headers."""

    status: int
    code: RestErrorCode
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


def admin_refusal(
    expected: SecretStr | None, authorization: str | None, feature: str = "Administration"
) -> AdminRefusal | None:
    """Return why `authorization` does not carry the admin token, or None when it does.

    `feature` names what the token guards, for the 403 of a server without one.
    """
    if expected is None or not expected.get_secret_value():
        return AdminRefusal(403, RestErrorCode.ADMIN_DISABLED,
                            f"{feature} is disabled: set ADMIN_TOKEN on the server to enable it")
    offered = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(offered.encode(), expected.get_secret_value().encode()):
        return AdminRefusal(401, RestErrorCode.AUTH_REQUIRED,
                            "Missing or wrong token: send Authorization: Bearer <ADMIN_TOKEN>",
                            {"WWW-Authenticate": "Bearer"})
    return None


def require_admin(expected: SecretStr | None, authorization: str | None, feature: str) -> None:
    """Raise the 401/403 HTTPException of `admin_refusal`, or return when the token is right.

    RestGuard refuses anonymous requests before their body is read; routes check again so that
    they stay safe in an app built without it (in-process test clients).
    """
    refusal = admin_refusal(expected, authorization, feature)
    if refusal is not None:
        raise HTTPException(refusal.status, error_detail(refusal.code, refusal.detail),
                            headers=refusal.headers or None)


class RestGuard:
    """ASGI middleware: rate limit per client, admin check of ingestion, body limits (see the module doc).

    Args:
        budgets: the per-client token buckets (shared with the routes that charge more).
        max_body_bytes: the largest request body read.
        max_upload_bytes: the largest upload to the UI's API read.
        admin_token: the operator's token (`ADMIN_TOKEN`); None disables ingestion.
        exempt_prefixes: paths the guard leaves alone (the UI's static assets).
        scoring_busy: says when a UI event is a scoring event that the full lane would refuse.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        budgets: ClientBudgets,
        max_body_bytes: int,
        max_upload_bytes: int,
        admin_token: SecretStr | None,
        exempt_prefixes: tuple[str, ...] = (),
        scoring_busy: ScoringBusy | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.scoring_busy = scoring_busy
        self.limited = RequestBodyLimitMiddleware(app, max_body_size=max_body_bytes)
        self.upload_limited = RequestBodyLimitMiddleware(app, max_body_size=max_upload_bytes)
        self.budgets = budgets
        self.admin_token = admin_token
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        authorization = Headers(scope=scope).get("authorization")
        # The refusal's words are answered only on the ingestion path; elsewhere it only means "charge".
        refusal = admin_refusal(self.admin_token, authorization, INGEST_FEATURE)
        if refusal is not None:  # not the operator: the client's bucket pays for it
            client = scope.get("client")
            cost = request_cost(scope["method"], path)
            wait_s = self.budgets.charge(client[0] if client else "unknown", cost)
            if wait_s is not None:
                message = self.budgets.refusal(wait_s)
                await JSONResponse(
                    {"detail": message if path.startswith(UI_API_PREFIX)
                     else error_detail(RestErrorCode.RATE_LIMITED, message)},
                    status_code=429, headers={"Retry-After": str(retry_after_s(wait_s))},
                )(scope, receive, send)
                return
            scope.setdefault("state", {})["rate_account"] = ClientAccount(
                self.budgets, client[0] if client else "unknown", paid=cost)
            if scope["method"] == "POST" and path.rstrip("/") == INGEST_PATH:
                await JSONResponse({"detail": error_detail(refusal.code, refusal.detail)},
                                   status_code=refusal.status, headers=refusal.headers)(scope, receive, send)
                return
        if path.rstrip("/") == UI_UPLOAD_PATH:
            await self.upload_limited(scope, receive, send)
            return
        if self.scoring_busy is not None and scope["method"] == "POST":
            replay = await self._refuse_busy_scoring(scope, receive, send)
            if replay is None:
                return
            receive = replay
        declared = _declared_length(scope)
        if not path.startswith(UI_API_PREFIX) and declared > self.max_body_bytes:
            await JSONResponse(
                {"detail": error_detail(RestErrorCode.BODY_TOO_LARGE, f"the body declares {declared}"
                                        f" bytes, expected at most {self.max_body_bytes} (MAX_BODY_BYTES)")},
                status_code=413,
            )(scope, receive, send)
            return
        await self.limited(scope, receive, send)

    async def _refuse_busy_scoring(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer 503 to a scoring event the full lane would refuse and return None; else return the
        `receive` to go on with (replaying a join's body, read here to name the event)."""
        assert self.scoring_busy is not None
        path: str = scope["path"]
        if path.startswith(UI_CALL_PREFIX):
            wait_s = self.scoring_busy(None, path[len(UI_CALL_PREFIX):].strip("/").removeprefix("v2/"))
        elif path.rstrip("/") == UI_JOIN_PATH:
            messages, body = await _read_body(receive, self.max_body_bytes)
            if body is None:  # over the limit: the limiter answers 413 from the replayed messages
                wait_s = None
            else:
                wait_s = self.scoring_busy(_fn_index(body), None)
            receive = _replaying(messages, receive)
        else:
            return receive
        if wait_s is None:
            return receive
        await JSONResponse(
            {"detail": f"Scoring is busy: every turn is taken; retry after {retry_after_s(wait_s)} s"},
            status_code=503, headers={"Retry-After": str(retry_after_s(wait_s))},
        )(scope, receive, send)
        return None


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """Read a request's body messages; return them and the body, or None past `limit` (stops reading there)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > limit:
            return messages, None
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out `messages` again, then the rest of the request."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _declared_length(scope: Scope) -> int:
    try:
        return int(Headers(scope=scope).get("content-length", "0"))
    except ValueError:
        return 0  # not a number: the server (h11, httptools) refuses it before it gets here


def _fn_index(body: bytes) -> int | None:
    try:
        value = json.loads(body).get("fn_index")
    except (ValueError, AttributeError):
        return None  # Gradio answers a malformed join itself
    return value if isinstance(value, int) else None


def request_cost(method: str, path: str) -> float:
    """Return the tokens a request costs at the door (see the module doc)."""
    if not path.startswith(UI_API_PREFIX):
        return 1.0
    if path.rstrip("/") == UI_UPLOAD_PATH:
        return 1.0
    if method == "POST" and path.startswith(UI_EVENT_PREFIXES):
        return UI_EVENT_COST
    return 0.0
