"""Every WebSocket message of the API, both directions, as pydantic models. No I/O here.

Server messages use the documented envelope `{"type", "timestamp", "data"}`; `system_status` keeps
its sections at the top level because the documented clients read `message.stats`. Messages that
come off the bus also carry `seq` (per topic, strictly increasing) and `epoch` (changes when that
topic's history is lost), which clients send back as `?since=&epoch=` to resume.
"""

from __future__ import annotations

import json
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from core.clock import format_utc, utc_now
from core.vocabulary import MAX_SYMBOL_LENGTH

__all__ = [
    "AckMessage",
    "AiModelsSection",
    "BudgetRules",
    "ClientMessage",
    "ClientsSection",
    "CloseCode",
    "DataSourcesSection",
    "DatabaseSection",
    "ErrorCode",
    "ErrorDetail",
    "ErrorMessage",
    "FearGreedData",
    "FilterRequest",
    "GetAllRequest",
    "MarketMood",
    "MachineFingerprint",
    "ModelBudget",
    "ModelDownload",
    "ModelEntry",
    "ModelEvaluation",
    "ModelLock",
    "ModelRuntime",
    "ModelState",
    "ModelSummary",
    "ModelsStatusData",
    "ModelsStatusMessage",
    "NewsData",
    "NewsMessage",
    "PingRequest",
    "PongMessage",
    "PriceData",
    "PriceUpdateMessage",
    "ProtocolError",
    "RuntimeCandidate",
    "SentimentData",
    "SentimentUpdateMessage",
    "SocialSentiment",
    "SourceEntry",
    "StatsSection",
    "StreamErrorMessage",
    "SubscribeRequest",
    "SystemStatusMessage",
    "UnsubscribeRequest",
    "error_frame",
    "now_stamp",
    "parse_client_message",
]

MAX_KEYWORD_LENGTH = 64
MAX_FILTER_TERMS = 200  # hard cap per list in a `filter`; MAX_KEYWORDS / MAX_SOURCES set the usable limit
MAX_ID_LENGTH = 128


def now_stamp() -> str:
    """Return the current UTC time as the wire's ISO 8601 `Z` string."""
    return format_utc(utc_now())


class ErrorCode(StrEnum):
    """Codes of `error` messages. The first three are the original document's; the rest tell cases apart."""

    INTERNAL_ERROR = "INTERNAL_ERROR"
    CONNECTION_ERROR = "CONNECTION_ERROR"  # an upstream data source was lost
    AUTH_ERROR = "AUTH_ERROR"
    INVALID_MESSAGE = "INVALID_MESSAGE"  # not JSON, wrong shape or types
    UNKNOWN_ACTION = "UNKNOWN_ACTION"
    INVALID_SYMBOL = "INVALID_SYMBOL"
    RATE_LIMITED = "RATE_LIMITED"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    HISTORY_GAP = "HISTORY_GAP"
    SEQ_AHEAD = "SEQ_AHEAD"  # `?since=` beyond the newest seq of the same epoch
    SLOW_CONSUMER = "SLOW_CONSUMER"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (RFC 6455 section 7.4.1)."""

    WS_1000_NORMAL_CLOSURE = 1000
    WS_1001_GOING_AWAY = 1001  # server shutting down
    WS_1008_POLICY_VIOLATION = 1008  # auth failure, abuse, origin refused
    WS_1009_MESSAGE_TOO_BIG = 1009
    WS_1011_INTERNAL_ERROR = 1011
    WS_1013_TRY_AGAIN_LATER = 1013  # slow consumer or server full: reconnect and resume


class ProtocolError(Exception):
    """A client message the server cannot act on; becomes an `error` message, never a close."""

    def __init__(self, code: ErrorCode, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- server -> client


class _Envelope(_Wire):
    timestamp: str = Field(default_factory=now_stamp)
    seq: int | None = None
    epoch: str | None = None


class PriceData(_Wire):
    symbol: str
    price: float
    change_24h: float | None
    change_7d: float | None
    volume_24h: float | None
    market_cap: float | None
    timestamp: str
    age_s: float | None = None  # seconds between the provider's quote and this message


class PriceUpdateMessage(_Envelope):
    type: Literal["price_update"] = "price_update"
    source: str
    data: PriceData


class NewsData(_Wire):
    title: str
    description: str
    url: str
    source: str
    published_at: str
    sentiment: Literal["positive", "negative", "neutral"] | None
    sentiment_score: float | None
    image_url: str | None
    sentiment_model: str | None = None
    # The models whose answers made the score: those done within the news deadline (empty: unscored).
    scored_by: list[str] = Field(default_factory=list)


class NewsMessage(_Envelope):
    type: Literal["news"] = "news"
    data: NewsData


class FearGreedData(_Wire):
    value: int | None
    classification: str | None
    timestamp: str | None
    source: str | None = None
    reason: str | None = None  # why the value is null


class SocialSentiment(_Wire):
    sentiment: Literal["bullish", "bearish", "neutral"] | None
    score: float | None
    mentions: int | None
    reason: str | None = None


class MarketMood(_Wire):
    overall: Literal["bullish", "bearish", "neutral"] | None
    confidence: float | None
    reason: str | None = None
    inputs: dict[str, float | None] = Field(default_factory=dict)


class SentimentData(_Wire):
    fear_greed: FearGreedData
    social: dict[str, SocialSentiment]
    market: MarketMood


class SentimentUpdateMessage(_Envelope):
    type: Literal["sentiment_update"] = "sentiment_update"
    data: SentimentData


class RuntimeCandidate(BaseModel):
    """One variant `auto` measured: texts/s on the evaluation texts, label agreement with fp32."""

    name: str
    texts_per_s: float | None
    agreement: float | None
    kept: bool
    reason: str | None = None


class MachineFingerprint(BaseModel):
    """What makes a runtime measurement valid only here: hardware, threads and library versions."""

    model_config = ConfigDict(extra="forbid")
    machine: str
    cpu: str
    cpus: int = Field(description="usable cores: the container's quota, not the host's count")
    threads: int
    torch: str
    transformers: str
    onnxruntime: str | None
    device: str
    gpu: str | None = Field(default=None, description="the CUDA device's name; null on CPU")


class ModelRuntime(BaseModel):
    """How a model runs and how that was chosen: measured now, from the cache, requested, or unmeasured."""

    chosen: str
    source: Literal["measured", "cache", "requested", "unmeasured"]
    candidates: list[RuntimeCandidate] = []
    texts: int = 0
    floor: float = 0.99
    reason: str | None = None
    measured_at: str | None = None
    machine: MachineFingerprint | None = Field(
        default=None, description="where the figures were measured: they hold only there; null when unmeasured")


ModelState = Literal["available", "loading", "failed", "skipped"]


class ModelDownload(BaseModel):
    """A hub download in progress: bytes on disk of the files' total (null when the hub did not say)."""

    bytes_done: int
    bytes_total: int | None


class BudgetRules(BaseModel):
    """The CPU budget's rules on this machine: its settings and what was read of the host."""

    model_config = ConfigDict(extra="forbid")
    cpu_share: float = Field(description="share of the model cores the models may take at the news rate")
    news_per_min: float = Field(description="the news rate the budget plans for (NEWS_PER_MIN)")
    deadline_ms: float = Field(description="the news scoring deadline (NEWS_SCORE_DEADLINE_MS)")
    model_cores: int = Field(description="cores the model threads use (one is left to the event loop)")
    memory_mib: int = Field(description="memory the models' weights may take: half of what is available")
    cores_from: str = Field(description="where the core count was read")
    memory_from: str = Field(description="where the memory figure was read")


class ModelBudget(BaseModel):
    """What one news item costs a model on this machine, against the budget's rules."""

    model_config = ConfigDict(extra="forbid")
    core_ms_per_item: float | None = Field(
        description="core-milliseconds per window-filling news item; null until measured or estimated")
    source: Literal["measured", "estimated"] | None
    basis: str = Field(description="how the figure was had, in words")
    cpu_share_at_news_rate: float | None = Field(description="share of the model cores at the planned news rate")
    weight_mib: int | None = Field(description="size of the weights, from the model's config")
    loaded_by: Literal["budget", "MODELS", "admin"] | None = Field(description="who loaded it; null when not loaded")
    rules: BudgetRules


class ModelLock(BaseModel):
    """A hub model's pin in `inference/models.lock.json`: locked at a commit, or unlocked with a warning."""

    model_config = ConfigDict(extra="forbid")
    state: Literal["locked", "unlocked"]
    revision: str | None = None
    files: int | None = Field(default=None, description="files whose SHA-256 the lock checks")
    warning: str | None = None


class SampleFigures(BaseModel):
    """One model's figures on one domain of the shipped sample (`inference.selfeval.measure`)."""

    model_config = ConfigDict(extra="forbid")
    n: int
    accuracy: float | None
    accuracy_ci95: list[float] = Field(description="Wilson 95 % interval")
    macro_f1: float | None
    macro_f1_ci95: list[float] | None = Field(description="bootstrap 95 % interval; null with no rows")
    ece: float | None = Field(description="expected calibration error, 10 equal-width confidence bins")
    ece_if_calibrated: float | None = Field(
        default=None, description="the ECE a perfectly calibrated model with these confidences shows on as many texts")
    ece_p: float | None = Field(default=None, description="share of such calibrated draws at or above `ece`")


class SampleExclusion(BaseModel):
    """The sample rows left out of a model's score because it was trained on them, and why."""

    model_config = ConfigDict(extra="forbid")
    rows: int
    of: int
    reason: str
    training_data_known: bool = Field(description="false: the model's training data is unknown, none left out")


class ModelEvaluation(BaseModel):
    """A model's self-evaluation on the shipped sample: running, done (figures per domain), excluded or failed."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["running", "done", "excluded", "failed"]
    error: str | None = Field(default=None, description="why it failed, or why nothing was measured")
    sample: str | None = Field(default=None, description="the sample file, once done")
    seconds: float | None = None
    domains: dict[str, SampleFigures] = Field(default_factory=dict, description="figures per domain, once done")
    excluded: SampleExclusion | None = None


class ModelEntry(BaseModel):
    """One catalog model: its state in words, where and how it runs, what it costs, and its statistics."""

    model_config = ConfigDict(extra="forbid")  # every key documented: the contract tests hold the server to it
    id: str
    type: str = "sentiment"
    kind: Literal["transformers", "embedded", "lexicon"] | None = None
    domain: str | None = Field(default=None, description="the catalog's domain of the model: crypto, finance, ...")
    status: ModelState
    reason: str | None = None  # the state in words: why skipped, what failed, what loads it, what it waits for
    success_rate: float | None
    success_rate_last_hour: float | None = None
    avg_response_time: float | None
    p95_ms: float | None = None
    last_used: str | None
    calls: int = 0
    calls_last_hour: int = 0
    successes: int = 0
    failures: int = 0
    rejected: int = Field(default=0, description="calls refused by a full queue: not counted as failures")
    texts: int = 0
    last_error: str | None = None
    error: str | None = None
    device: str | None = None
    precision: str | None = None
    runtime: ModelRuntime | None = None
    download: ModelDownload | None = None
    load_seconds: float | None = None
    budget: ModelBudget | None = Field(default=None, description="null for the lexicon, which costs nothing")
    news_deadline_misses: int = Field(default=0, description="news items published without its score")
    weights: dict[str, float] = Field(default_factory=dict, description="ensemble weight per domain")
    weight_source: dict[str, Literal["override", "measured", "catalog prior"]] = Field(default_factory=dict)
    evaluation: ModelEvaluation | None = Field(
        default=None, description="self-evaluation on the shipped sample: null before it is queued")
    lock: ModelLock | None = Field(default=None, description="null for the embedded model and the lexicon")


class ModelsStatusData(_Wire):
    """Every catalog model, loaded or not; `total == available + loading + failed + skipped`."""

    total: int
    available: int
    loading: int
    failed: int
    skipped: int
    models: list[ModelEntry]


class ModelsStatusMessage(_Envelope):
    type: Literal["models_status"] = "models_status"
    data: ModelsStatusData


class ModelSummary(BaseModel):
    """A model in `system_status`: its state and reason; `models_status` has the whole entry."""

    model_config = ConfigDict(extra="forbid")
    id: str
    status: ModelState
    reason: str | None = None
    success_rate: float | None = None
    error: str | None = None


class AiModelsSection(_Wire):
    """`total == available + loading + failed + skipped`."""

    total: int
    available: int
    failed: int
    loading: int
    skipped: int
    models: list[ModelSummary]


class SourceEntry(BaseModel):
    """One provider's health. `reason` says in words why it is degraded or inactive (a blocked
    provider names the setting that fixes it); `priority` orders the providers of a category."""

    model_config = ConfigDict(extra="forbid")
    name: str
    category: str
    status: Literal["active", "degraded", "inactive"]
    priority: int = 0
    last_success: str | None = None
    last_error: str | None = None
    latency_ms: float | None = None
    reason: str | None = None


class DataSourcesSection(_Wire):
    """Provider health; `total == active + degraded + inactive`, at the top level and per category."""

    total: int
    active: int
    degraded: int
    inactive: int
    categories: dict[str, dict[str, int]]
    pools: int
    sources: list[SourceEntry]
    data_mode: str | None = None
    simulated: bool = False


class DatabaseSection(_Wire):
    online: bool
    last_check: str | None
    ai_models_db: bool
    main_db: bool
    error: str | None = None
    # Whether what is stored survives a restart: `persistent` (a Space's persistent storage),
    # `ephemeral` (a Space's own disk, wiped on restart), `local` (not a Space), `external` (DATABASE_URL).
    storage: Literal["persistent", "ephemeral", "local", "external"] | None = None
    data_dir: str | None = None
    storage_reason: str | None = None


class ClientsSection(_Wire):
    """How clients are told apart (docs/limits.md): the trusted proxies and what arrived so far."""

    trusted_proxies: list[str]
    arrivals: int  # HTTP requests and WebSocket handshakes from addresses other than loopback
    distinct_addresses: int  # counted up to 1024
    forwarded_ignored: int  # arrivals whose X-Forwarded-For came from a peer not in TRUSTED_PROXIES
    single_address: str | None = None  # the one address all came from (never a public one)
    warning: str | None = None  # set when every arrival came from one address, with the fix


class StatsSection(_Wire):
    total_sources: int
    active_sources: int
    total_models: int
    available_models: int
    requests_last_minute: int
    requests_last_hour: int
    connections: int = 0
    uptime_s: float = 0.0


class SystemStatusMessage(_Envelope):
    type: Literal["system_status"] = "system_status"
    ai_models: AiModelsSection
    data_sources: DataSourcesSection
    database: DatabaseSection
    stats: StatsSection
    agent_running: bool
    version: str | None = None
    clients: ClientsSection | None = None


class ErrorDetail(_Wire):
    code: ErrorCode
    message: str
    details: str | None = None


class ErrorMessage(_Wire):
    type: Literal["error"] = "error"
    timestamp: str = Field(default_factory=now_stamp)
    error: ErrorDetail
    id: str | int | None = None  # echo of the request's id, when it had one


class StreamErrorMessage(ErrorMessage):
    """An `error` published to every subscriber of a stream (CONNECTION_ERROR); it carries seq/epoch."""

    seq: int | None = None
    epoch: str | None = None


class PongMessage(_Wire):
    type: Literal["pong"] = "pong"
    timestamp: str = Field(default_factory=now_stamp)
    id: str | int | None = None


class AckMessage(_Wire):
    """Confirms a subscribe/unsubscribe/filter with the connection's resulting state."""

    type: Literal["ack"] = "ack"
    timestamp: str = Field(default_factory=now_stamp)
    action: str
    data: dict[str, Any]
    id: str | int | None = None


def _encodable(text: str | None) -> str | None:
    # A client can smuggle lone surrogates ("\ud800") into text we echo; UTF-8 cannot encode them.
    if text is None:
        return None
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_frame(
    code: ErrorCode, message: str, details: str | None = None, request_id: str | int | None = None
) -> str:
    """Encode an `error` message (whatever client text `message` and `details` echo)."""
    detail = ErrorDetail(code=code, message=_encodable(message) or "", details=_encodable(details))
    if isinstance(request_id, str):
        request_id = _encodable(request_id)
    return ErrorMessage(error=detail, id=request_id).model_dump_json()


# ---------------------------------------------------------------- client -> server

Symbol = Annotated[str, Field(min_length=1, max_length=MAX_SYMBOL_LENGTH)]
Keyword = Annotated[str, Field(max_length=MAX_KEYWORD_LENGTH)]
# Bounded, because the server echoes the id back: a 4,000-digit integer is not an id.
RequestId = (
    Annotated[str, Field(max_length=MAX_ID_LENGTH)] | Annotated[int, Field(ge=-(2**63), lt=2**63)] | None
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    id: RequestId = None


class SubscribeRequest(_Request):
    action: Literal["subscribe"]
    symbols: list[Symbol] = Field(min_length=1, max_length=500)


class UnsubscribeRequest(_Request):
    action: Literal["unsubscribe"]
    symbols: list[Symbol] = Field(min_length=1, max_length=500)


class GetAllRequest(_Request):
    action: Literal["get_all"]


class FilterRequest(_Request):
    action: Literal["filter"]
    keywords: list[Keyword] = Field(default_factory=list, max_length=MAX_FILTER_TERMS)
    sources: list[Keyword] | None = Field(default=None, max_length=MAX_FILTER_TERMS)


class PingRequest(_Request):
    type: Literal["ping"]


ClientMessage = SubscribeRequest | UnsubscribeRequest | GetAllRequest | FilterRequest | PingRequest

_ACTIONS: dict[str, type[_Request]] = {
    "subscribe": SubscribeRequest,
    "unsubscribe": UnsubscribeRequest,
    "get_all": GetAllRequest,
    "filter": FilterRequest,
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {name: TypeAdapter(model) for name, model in _ACTIONS.items()}


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse one client frame, raising ProtocolError with the right code for anything else.

    Raises:
        ProtocolError: always, for any frame that is not a valid request, whatever went wrong
            inside the parser (deep nesting, bad encodings, huge numbers); never anything else.
    """
    try:
        return _parse(text)
    except ProtocolError:
        raise
    except RecursionError as exc:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, "Message is nested too deeply", "requests are flat JSON objects"
        ) from exc
    except Exception as exc:  # the parser's own failure is still the client's bad frame
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, "Message could not be parsed", f"{type(exc).__name__}: {str(exc)[:120]}"
        ) from exc


def _parse(text: str | bytes) -> ClientMessage:
    try:
        raw = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            "Expected a JSON object, got text that is not JSON",
            f'{str(exc)[:160]}; hint: send e.g. {{"action": "subscribe", "symbols": ["BTC"]}}',
        ) from exc
    if not isinstance(raw, dict):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"Expected a JSON object, got {type(raw).__name__}",
            'hint: send e.g. {"type": "ping"}',
        )
    action = raw.get("action")
    if action is None:
        if raw.get("type") == "ping":
            try:
                return PingRequest.model_validate(raw)
            except ValidationError as exc:
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, "Invalid ping", _summarise(exc)) from exc
        if "type" in raw:
            raise ProtocolError(
                ErrorCode.UNKNOWN_ACTION,
                f"Unknown message type {str(raw['type'])[:40]!r}",
                'expected {"type": "ping"} or an "action"',
            )
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            'Expected an "action" or "type" field, got neither',
            f"actions: {', '.join(_ACTIONS)}; or {{\"type\": \"ping\"}}",
        )
    if not isinstance(action, str) or action not in _ACTIONS:
        raise ProtocolError(
            ErrorCode.UNKNOWN_ACTION,
            f"Unknown action {str(action)[:40]!r}",
            f"expected one of: {', '.join(_ACTIONS)}",
        )
    try:
        return _ADAPTERS[action].validate_python(raw)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"Invalid {action!r} message", _summarise(exc)
        ) from exc
