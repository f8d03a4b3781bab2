"""Every REST body the API answers with, as pydantic models, and the one error shape. No I/O here.

The routes live in `api/` (and the Space's pages in `space/routes.py`); their models live here, at
the bottom, as the WebSocket messages do in `core/protocol.py` (whose models the REST routes reuse
where they send the same data), so clients and documents read them without importing a web framework.

Every error answers `{"detail": {"code": "...", "message": "..."}}` (a 422 adds `errors`, one entry
per invalid field). `detail` is where FastAPI puts an error, and what clients of the inference routes
already read `detail.code` from; README's REST section lists the codes. `GET /ready` is the one
exception by design: its 503 is the readiness body, what an orchestrator's probe reads.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.protocol import ModelEntry, PriceData
from core.records import SentimentLabel

__all__ = [
    "ERROR_CODE_BY_STATUS",
    "AsyncApiDocument",
    "EnsembleChoice",
    "ErrorResponse",
    "Health",
    "HistoryPoint",
    "IngestResult",
    "ModelChange",
    "ModelsList",
    "NewsList",
    "PriceQuote",
    "Prices",
    "PriceHistory",
    "Readiness",
    "RestError",
    "RestErrorCode",
    "SentimentResult",
    "SentimentScores",
    "StoredNews",
    "ValidationErrorResponse",
    "ValidationIssue",
    "error_detail",
    "error_responses",
]


# ---------------------------------------------------------------- errors


class RestErrorCode(StrEnum):
    """`detail.code` of every REST error, by status."""

    BAD_REQUEST = "BAD_REQUEST"  # 400
    AUTH_REQUIRED = "AUTH_REQUIRED"  # 401: no admin token, or a wrong one
    ADMIN_DISABLED = "ADMIN_DISABLED"  # 403: ADMIN_TOKEN is not set on the server
    NOT_FOUND = "NOT_FOUND"  # 404: no such route
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"  # 404
    UNKNOWN_MODEL = "UNKNOWN_MODEL"  # 404
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"  # 405
    MODEL_BUSY = "MODEL_BUSY"  # 409: the model cannot change state now
    BODY_TOO_LARGE = "BODY_TOO_LARGE"  # 413: over MAX_BODY_BYTES
    TOO_MANY_TEXTS = "TOO_MANY_TEXTS"  # 413
    TEXT_TOO_LONG = "TEXT_TOO_LONG"  # 413
    INVALID_REQUEST = "INVALID_REQUEST"  # 422: path, query or body failed validation
    RATE_LIMITED = "RATE_LIMITED"  # 429, with Retry-After
    NOT_PUBLISHED_YET = "NOT_PUBLISHED_YET"  # 503: no snapshot on the bus yet (just started)
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"  # 503
    SEARCH_UNAVAILABLE = "SEARCH_UNAVAILABLE"  # 503: the database has no full-text index
    NEWS_UNAVAILABLE = "NEWS_UNAVAILABLE"  # 503, with Retry-After: the item could not be made durable
    MODELS_UNAVAILABLE = "MODELS_UNAVAILABLE"  # 503: the inference service is off or not running
    BUSY = "BUSY"  # 503, with Retry-After: the anonymous scoring lane is full
    OVERLOADED = "OVERLOADED"  # 503, with Retry-After: a model's queue is full
    HTTP_ERROR = "HTTP_ERROR"  # any other status


# The code of an error raised with a plain message (a route's own, or Starlette's 404/405/413).
ERROR_CODE_BY_STATUS: dict[int, RestErrorCode] = {
    400: RestErrorCode.BAD_REQUEST,
    401: RestErrorCode.AUTH_REQUIRED,
    403: RestErrorCode.ADMIN_DISABLED,
    404: RestErrorCode.NOT_FOUND,
    405: RestErrorCode.METHOD_NOT_ALLOWED,
    413: RestErrorCode.BODY_TOO_LARGE,
    422: RestErrorCode.INVALID_REQUEST,
    429: RestErrorCode.RATE_LIMITED,
}


class RestError(BaseModel):
    code: RestErrorCode
    message: str = Field(description="what went wrong, what was expected, and what to do")


class ErrorResponse(BaseModel):
    """Every REST error: `{"detail": {"code", "message"}}`."""

    detail: RestError


class ValidationIssue(BaseModel):
    """One invalid field, as pydantic reports it."""

    model_config = ConfigDict(extra="allow")
    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationError(RestError):
    errors: list[ValidationIssue]


class ValidationErrorResponse(BaseModel):
    """A 422: the error shape, plus `errors`, one entry per invalid field."""

    detail: ValidationError


def error_detail(code: RestErrorCode, message: str) -> dict[str, str]:
    """Return the `detail` of an error (what `HTTPException(detail=...)` takes)."""
    return {"code": code.value, "message": message}


_ERROR_DESCRIPTIONS = {
    401: "Missing or wrong admin token (`AUTH_REQUIRED`); answered with `WWW-Authenticate: Bearer`",
    403: "ADMIN_TOKEN is not set on the server (`ADMIN_DISABLED`)",
    404: "Not found",
    409: "The model cannot change state now (`MODEL_BUSY`)",
    413: "Request body too large",
    422: "Invalid path, query or body (`INVALID_REQUEST`, with `errors`)",
    429: "Rate limited (`RATE_LIMITED`); retry after `Retry-After` seconds",
    503: "Unavailable for now; retry (after `Retry-After` seconds when given)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return a route's `responses=` entry declaring the error shape for each of `statuses`."""
    return {
        status: {
            "model": ValidationErrorResponse if status == 422 else ErrorResponse,
            "description": _ERROR_DESCRIPTIONS.get(status, "Error"),
        }
        for status in statuses
    }


# ---------------------------------------------------------------- system


class Health(BaseModel):
    status: Literal["ok"]
    data_mode: Literal["live", "demo", "auto"]
    market_source: str = Field(description="`simulator` or `live`")
    agent_running: bool


class Readiness(BaseModel):
    """`GET /ready`: 200 once every configured model is available or failed, 503 while any is loading."""

    ready: bool
    loading: list[str]
    available: list[str]
    failed: dict[str, str | None] = Field(description="model id: why it failed")
    skipped: dict[str, str | None] = Field(
        default_factory=dict, description="model id: why it is not loaded (absent with inference off)")
    inference: Literal["off"] | None = Field(
        default=None, description="`off` when the server runs with ENABLE_INFERENCE=0 (absent otherwise)")


class AsyncApiDocument(BaseModel):
    """The AsyncAPI 3.0 document of the WebSocket API (its channels, operations and message schemas)."""

    model_config = ConfigDict(extra="allow")
    asyncapi: Literal["3.0.0"]
    info: dict[str, Any]
    defaultContentType: str
    servers: dict[str, Any]
    channels: dict[str, Any]
    operations: dict[str, Any]
    components: dict[str, Any]


# ---------------------------------------------------------------- market


class PriceQuote(BaseModel):
    """A `price_update` without its envelope."""

    source: str
    data: PriceData


class Prices(BaseModel):
    simulated: bool
    prices: list[PriceQuote]


class HistoryPoint(BaseModel):
    """One bucket: the first, highest, lowest and last price stored in its interval."""

    open: float
    high: float
    low: float
    close: float
    source: str = Field(description="the source of the bucket's latest price")
    points: int = Field(description="prices folded into the bucket")
    timestamp: str = Field(description="the bucket's start, ISO 8601 UTC")


class PriceHistory(BaseModel):
    symbol: str
    interval: Literal["1m", "1h", "1d"]
    points: list[HistoryPoint]


# ---------------------------------------------------------------- news


NewsSentiment = Literal["positive", "negative", "neutral"]


class IngestResult(BaseModel):
    """`POST /api/news`: the item's seq; a duplicate answers the original seq and no sentiment."""

    seq: int | None
    duplicate: bool
    sentiment: NewsSentiment | None
    sentiment_score: float | None


class StoredNews(BaseModel):
    url: str
    title: str
    description: str
    source: str
    published_at: str
    image_url: str | None
    sentiment: NewsSentiment | None
    sentiment_score: float | None
    sentiment_model: str | None
    seq: int | None
    ingested_at: str


class NewsList(BaseModel):
    count: int
    items: list[StoredNews]


# ---------------------------------------------------------------- inference


class SentimentResult(BaseModel):
    label: SentimentLabel
    score: float = Field(description="-1 (bearish) to 1 (bullish)")
    confidence: float
    probs: dict[str, float]
    model: str = Field(description="the model that answered, or `ensemble`")
    truncated: bool = Field(description="the text was longer than the model's token window")


class SentimentScores(BaseModel):
    ready: bool
    loading: list[str]
    results: list[SentimentResult]


class EnsembleChoice(BaseModel):
    """What serves one domain (`ensemble` or `single`), and the measurements behind the choice."""

    model_config = ConfigDict(extra="forbid")
    mode: str
    weights: dict[str, float]
    temperatures: dict[str, float]
    ensemble_check_macro_f1: float | None
    best_model: str | None
    best_check_macro_f1: float | None
    n_fit: int
    n_check: int
    ensemble_win_probability: float | None
    reason: str
    rows_compared: int | None = Field(
        default=None, description="sample rows no compared model trained on: the rows the choice was made on")
    rows_in_domain: int | None = None
    left_out: dict[str, str] = Field(
        default_factory=dict, description="model id: why it was left out of the comparison (weight 0)")


class ModelsList(BaseModel):
    """Every catalog model; `total == available + loading + failed + skipped`."""

    total: int
    available: int
    loading: int
    failed: int
    skipped: int
    ensemble: dict[str, EnsembleChoice] = Field(description="per domain; empty before self-evaluation")
    models: list[ModelEntry]


class ModelChange(BaseModel):
    """`POST /api/models/{id}/load|unload`: the model's status after the change started."""

    model: ModelEntry
