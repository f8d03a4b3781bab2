"""One typed settings object, read from the environment once at start (`Settings.from_env(os.environ)`).

Every variable is optional. Each section below is one layer's part; `Settings` joins them into the
flat object the app passes down (`settings.port`, `settings.max_frame_bytes`, ...), so call sites read
one attribute whatever section it sits in. The README's configuration table is generated from these
fields (`python -m core.settings_doc`); a field's description is its row's text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from .client_address import TrustedProxies, default_trusted_proxies
from .data_place import SPACE_STORAGE_DIR, default_data_dir
from .settings_base import ConfigError, Csv, CsvInts, CsvSecrets, Lowercase, Section
from .settings_values import (
    DatabaseUrl,
    ExistingFile,
    ExistingFolder,
    FileName,
    FilePath,
    Folder,
    Host,
    HttpUrl,
    HttpUrls,
    Names,
    Origins,
    PlainText,
    RedisUrl,
    SpaceId,
    StartPrices,
    Subreddits,
    WsUrl,
)
from .vocabulary import (
    JOURNAL_KEEP,
    LEXICON_MODEL_ID,
    MAX_SYMBOL_LENGTH,
    PRECISIONS,
    TRACKABLE_SYMBOLS,
    Precision,
    precision_misfit,
)

__all__ = [
    "SECTIONS",
    "AccessSection",
    "ClusterSection",
    "ConfigError",
    "DataMode",
    "InferenceSection",
    "LimitsSection",
    "LoggingSection",
    "ProcessSection",
    "ServerSection",
    "Settings",
    "SourcesSection",
    "StorageSection",
]

DataMode = Literal["live", "demo", "auto"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_SYMBOL = re.compile(rf"^[A-Z0-9]{{1,{MAX_SYMBOL_LENGTH}}}$")


def _doc(description: str, default: str | None = None) -> Any:
    # `default` is the README's wording where the value itself says little ("torch default").
    return {"description": description, "json_schema_extra": {"doc_default": default} if default else None}


class ServerSection(Section):
    """What runs and where: the port, the data mode, the tracked symbols, the stream cadences."""

    port: int = Field(7860, ge=0, le=65535, **_doc("where `python app.py` listens"))
    host: Host = Field("0.0.0.0", **_doc("the address `python app.py` binds"))
    data_mode: Annotated[DataMode, Lowercase] = Field("auto", **_doc(
        "`live`: providers only; `demo`: the labelled simulator only; `auto`: live, with the labelled "
        "simulator until a market provider answers (said in `system_status.data_sources.simulated` and a UI banner)"))
    symbols: Csv = Field(TRACKABLE_SYMBOLS, **_doc(
        "tracked symbols, e.g. `BTC,ETH,SOL`; with live providers each must be known to the provider id map in "
        "`sources/symbols.py` (`DATA_MODE=demo` or `ENABLE_SOURCES=0` simulates any symbol of letters and digits)",
        "the top 20 by market cap"))
    space_id: SpaceId | None = Field(None, **_doc(
        "set by Hugging Face in every Space (`owner/name`); switches on the Space defaults of `TRUSTED_PROXIES` "
        "and `DATA_DIR`", "set by the Space"))
    enable_ui: bool = Field(True, **_doc("switch the Gradio UI off"))
    enable_sources: bool = Field(True, **_doc("switch the live providers off"))
    enable_inference: bool = Field(True, **_doc("switch the models off"))
    simulator_seed: int = Field(7, **_doc("the demo market's seed"))
    simulator_prices: StartPrices = Field((), **_doc(
        "the demo market's start prices as `SYMBOL:price` entries, e.g. `BTC:90000,ETH:3000`; each symbol must be "
        "in `SYMBOLS`", "built-in"))
    # Cadences, in seconds (the protocol table in README.md). Tests shrink them.
    price_interval_s: float = Field(1.0, ge=0.01, **_doc("`price_update` cadence, seconds"))
    status_interval_s: float = Field(5.0, ge=0.01, **_doc("`system_status` cadence, seconds"))
    models_interval_s: float = Field(10.0, ge=0.01, **_doc("`models_status` cadence, seconds"))
    sentiment_interval_s: float = Field(60.0, ge=0.01, **_doc("`sentiment_update` cadence at the latest, seconds"))


    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one symbol, e.g. SYMBOLS=BTC,ETH")
        symbols = tuple(symbol.upper() for symbol in value)
        if not all(_SYMBOL.match(symbol) for symbol in symbols):
            raise ValueError("symbols of letters and digits, comma-separated, e.g. BTC,ETH")
        return symbols


class ProcessSection(Section):
    """The server process (docs/scaling.md): its event loop, a port shared with others, the garbage collector."""

    server_loop: Annotated[Literal["auto", "asyncio", "uvloop"], Lowercase] = Field("auto", **_doc(
        "`auto` (uvloop when installed, else asyncio), `asyncio`, `uvloop` (falls back to asyncio when missing)"))
    reuse_port: bool = Field(False, **_doc(
        "bind `PORT` with `SO_REUSEPORT`, so several processes (with `REDIS_URL`) listen on one port and the "
        "kernel spreads connections over them (docs/scaling.md)"))
    gc_threshold: CsvInts = Field(
        (2000, 10, 10), **_doc("`gc.set_threshold()` values, up to 3 integers >= 1; Python's is `700,10,10`",
                               "`2000,10,10`"))
    gc_freeze: bool = Field(True, **_doc(
        "freeze what start-up created, so full collections walk only later objects (docs/scaling.md)"))
    gc_pace_ms: int = Field(100, ge=0, **_doc(
        "a young garbage collection this often, the middle generation every 10th, instead of by allocation "
        "counts; `0`: counts only (docs/scaling.md)"))
    gc_full_every_s: float = Field(600.0, gt=0, **_doc(
        "with `GC_PACE_MS`, a full collection at least this often, frozen objects included (the garbage cycles "
        "the younger ones miss)"))
    gc_full_after_closes: int = Field(3000, ge=1, **_doc(
        "with `GC_PACE_MS`, a full collection of what is not frozen also once this many WebSocket connections "
        "have ended since the last one (docs/scaling.md)"))
    gc_freeze_survivors: bool = Field(True, **_doc(
        "with `GC_PACE_MS`, freeze what survives each middle collection, so that only the collection every "
        "`GC_FULL_EVERY_S` walks the objects of live sockets (docs/scaling.md)"))


    @field_validator("gc_threshold")
    @classmethod
    def _threshold(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        # A first value of 0 would switch automatic collection off: garbage cycles would never be freed.
        if len(value) > 3 or any(part < 1 for part in value):
            raise ValueError("up to 3 integers >= 1, e.g. 2000,10,10")
        return value


class AccessSection(Section):
    """Who may do what: the admin token, WebSocket tokens and browser origins."""

    admin_token: SecretStr | None = Field(None, **_doc(
        "enables `POST /api/news` (Bearer token); unset answers 403"))
    api_tokens: CsvSecrets = Field((), **_doc(
        "WebSocket tokens, comma-separated; unset leaves the sockets open (see [docs/limits.md](docs/limits.md))"))
    allowed_origins: Origins = Field((), **_doc(
        "browser origins allowed on the sockets, comma-separated; unset allows any "
        "(see [docs/limits.md](docs/limits.md))"))

    def api_token_values(self) -> tuple[str, ...]:
        """Return the WebSocket tokens in clear, for the constant-time comparison only."""
        return tuple(token.get_secret_value() for token in self.api_tokens)


class StorageSection(Section):
    """Where data is kept, and for how long."""

    data_dir: Folder = Field(Path("data"), **_doc(
        "SQLite database (`hub.sqlite3`, WAL) and runtime caches; `system_status.database.storage` says whether "
        "it survives a restart ([docs/retention.md](docs/retention.md))",
        "`SPACE_STORAGE_DIR` when it exists and is writable, else `./data`"))
    space_storage_dir: Folder = Field(SPACE_STORAGE_DIR, **_doc(
        "the Space's persistent storage, where Hugging Face mounts it; the default `DATA_DIR` when it exists and "
        "is writable"))
    database_url: DatabaseUrl | None = Field(None, **_doc(
        "any SQLAlchemy URL instead of SQLite, e.g. `postgresql+psycopg://user:pw@host/db`"))
    price_retention_days: float = Field(7.0, ge=0.01, **_doc(
        "how long raw price points are kept ([docs/retention.md](docs/retention.md))"))
    price_1m_retention_days: float = Field(30.0, ge=0.01, **_doc(
        "how long 1m price buckets are kept (1h and 1d buckets are kept)"))
    price_prune_interval_s: float = Field(3600.0, ge=1.0, **_doc("how often price retention runs, seconds"))


class ClusterSection(Section):
    """Scale-out over Redis ([docs/scaling.md](docs/scaling.md))."""

    redis_url: RedisUrl | None = Field(None, **_doc(
        "scale-out over Redis (see [docs/scaling.md](docs/scaling.md))"))
    redis_prefix: str = Field("hub", **_doc("key namespace, so several deployments can share one Redis"))
    leader_lock_ttl_s: float = Field(5.0, ge=2.0, **_doc("a dead leader is replaced within about 1.2x this, seconds"))
    backplane_max_pending: int = Field(1000, ge=1, **_doc(
        "envelopes a leader queues for Redis at most; past it new ones are refused (see [docs/bus.md](docs/bus.md))"))
    backplane_publish_timeout_s: float = Field(3.0, ge=0.5, **_doc(
        "a leader that cannot publish for this long steps down, seconds"))


class InferenceSection(Section):
    """The models ([docs/inference.md](docs/inference.md))."""

    models: Csv | None = Field(None, **_doc(
        "model ids in fallback order, e.g. `embedded/minilm-finhead,ProsusAI/finbert` "
        "([docs/inference.md](docs/inference.md), \"Default models\")",
        "all on CUDA; on CPU what the measured budget allows (every catalog model is listed either way)"))
    device: Annotated[str, Lowercase] = Field("auto", **_doc("`auto`, `cpu`, `cuda`, `cuda:N` (fp16 on CUDA)"))
    inference_precision: Annotated[Precision, Lowercase] = Field("auto", **_doc(
        "`auto` (each model measures its variants at load and runs the fastest whose labels agree with fp32 "
        "on >= 99 % of the evaluation texts; cached in `DATA_DIR`), `fp32`, `bf16`, `fp16` (CUDA), `int8`, "
        "`onnx-fp32`, `onnx-int8` (CPU)"))
    inference_exclude: Csv = Field((), **_doc("variants `auto` never measures, comma-separated, e.g. `bf16`"))
    inference_evalset: ExistingFile | None = Field(None, **_doc(
        "JSON lines whose `text` fields gate `auto`; without texts `auto` runs fp32 and says so",
        "`inference/evalset/sample.jsonl`"))
    inference_threads: int | None = Field(None, ge=0, **_doc(
        "CPU threads for the models",
        "every usable core but one (the container's CPU quota, not the host's), so the event loop keeps a core"))
    inference_cpu_share: float = Field(0.5, gt=0.0, le=1.0, **_doc(
        "share of the model cores news scoring may take at `NEWS_RATE_PER_MIN`: a catalog model loads by default "
        "on CPU while the measured cost fits ([docs/inference.md](docs/inference.md), \"Default models\")"))
    news_rate_per_min: float = Field(6.0, gt=0.0, **_doc("the news rate the CPU budget plans for, items per minute"))
    news_score_deadline_ms: float = Field(500.0, gt=0.0, **_doc(
        "news is published with the scores of the models done within this bound, milliseconds; the default "
        "model set on CPU must score one item within it"))
    inference_max_batch: int | None = Field(None, ge=0, **_doc(
        "texts per engine batch at most ([docs/inference.md](docs/inference.md))", "`32` on CPU / `256` on CUDA"))
    inference_max_wait_ms: float = Field(5.0, ge=0.0, **_doc("how long a batch waits to fill, milliseconds"))
    model_dir: ExistingFolder | None = Field(None, **_doc(
        "local models laid out as `<org>/<name>/` (besides the HF cache)"))
    model_lock: FilePath | None = Field(None, **_doc(
        "the model lock: locked commit and SHA-256 per file (`python -m training.lock` writes it)",
        "`inference/models.lock.json`"))
    self_evaluate: bool = Field(True, **_doc(
        "score the shipped sample with each model once loaded and fit the ensemble on the measurements"))
    hf_hub_offline: bool = Field(False, **_doc("never contact the Hugging Face hub; models come from the cache"))
    transformers_offline: bool = Field(False, **_doc("the same as `HF_HUB_OFFLINE` (its older name)"))
    hf_hub_cache: Folder | None = Field(None, **_doc("the Hugging Face hub cache", "`$HF_HOME/hub`"))
    hf_home: Folder | None = Field(None, **_doc("the Hugging Face home folder", "`~/.cache/huggingface`"))


    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", value):
            raise ValueError("auto, cpu, cuda or cuda:N")
        return value

    @field_validator("inference_exclude")
    @classmethod
    def _variants(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        variants = tuple(variant.lower() for variant in value)
        if not set(variants) <= set(PRECISIONS) - {"auto"}:
            raise ValueError(f"variants among {', '.join(PRECISIONS[1:])}, comma-separated, e.g. bf16")
        return variants

    @field_validator("models")
    @classmethod
    def _models(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        # The rule of inference/catalog.py's resolve_model_ids: a hub id `org/name` (catalogued or not),
        # a local path, or the lexicon; checked here so a typo stops the start naming MODELS.
        for model_id in value or ():
            if "/" not in model_id and model_id != LEXICON_MODEL_ID:
                raise ValueError(f"model ids `org/name` (or {LEXICON_MODEL_ID}), comma-separated, "
                                 "e.g. embedded/minilm-finhead,ProsusAI/finbert")
        if value and len(set(value)) != len(value):
            raise ValueError("model ids without duplicates")
        return value or None

    @model_validator(mode="after")
    def _precision_fits_device(self) -> InferenceSection:
        # Only an explicit device can be checked here; with DEVICE=auto the inference layer asks again.
        misfit = precision_misfit(self.inference_precision, self.device) if self.device != "auto" else None
        if misfit is not None:
            raise ValueError(misfit)
        return self

    @field_validator("inference_threads", "inference_max_batch")
    @classmethod
    def _zero_is_default(cls, value: int | None) -> int | None:
        return value or None

    @property
    def hub_offline(self) -> bool:
        """True when either offline switch is on."""
        return self.hf_hub_offline or self.transformers_offline

    @property
    def hub_cache_dir(self) -> Path | None:
        """The hub cache to use: HF_HUB_CACHE, else HF_HOME/hub, else None (huggingface_hub's default)."""
        if self.hf_hub_cache is not None:
            return self.hf_hub_cache
        return self.hf_home / "hub" if self.hf_home is not None else None


class LimitsSection(Section):
    """Per-connection and REST limits ([docs/limits.md](docs/limits.md) explains each default)."""

    BLANK_MEANS_NONE: ClassVar[frozenset[str]] = frozenset({"trusted_proxies"})

    max_frame_bytes: int = Field(64 * 1024, ge=256, **_doc(
        "larger frames get `MESSAGE_TOO_LARGE`; frames over 1 MiB close with 1009"))
    outbox_size: int = Field(256, ge=4, **_doc("frames queued per socket before `SLOW_CONSUMER`"))
    messages_per_second: float = Field(20.0, ge=0.1, **_doc("client messages per second per socket"))
    message_burst: int = Field(40, ge=1, **_doc("client messages in a burst per socket"))
    max_symbols_per_connection: int = Field(100, ge=1, **_doc("symbols one socket may subscribe to"))
    max_keywords: int = Field(50, ge=1, **_doc("keywords in one news filter"))
    max_sources: int = Field(50, ge=1, **_doc("sources in one news filter"))
    max_news_backlog: int = Field(100, ge=0, **_doc("`?backlog=N` on /ws/news at most: latest items sent on connect"))
    idle_timeout_s: float = Field(300.0, ge=1.0, **_doc("a socket silent both ways this long is closed, seconds"))
    ws_ping_interval_s: float = Field(20.0, ge=0.5, **_doc(
        "protocol ping interval; a peer not answering within it is dropped, seconds"))
    # permessage-deflate costs tens of KB per connection (docs/limits.md); off keeps idle sockets small.
    ws_per_message_deflate: bool = Field(False, **_doc("permessage-deflate on the sockets"))
    ws_direct_writes: bool = Field(True, **_doc(
        "frames built once per message and written straight to uvicorn's transport (ws/direct.py); "
        "0 sends each through ASGI"))
    max_connections: int = Field(5000, ge=1, **_doc("open sockets at most"))
    max_connections_per_ip: int = Field(200, ge=1, **_doc("open sockets per client IP at most"))
    trusted_proxies: Csv = Field(default_trusted_proxies(None), **_doc(
        "peers (addresses or networks) whose `X-Forwarded-For` is believed, comma-separated; blank trusts none, "
        "`*` any ([docs/limits.md](docs/limits.md#client-addresses))",
        "`127.0.0.1,::1`; on a Space also `10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7`"))
    history_size: int = Field(1000, ge=10, le=JOURNAL_KEEP, **_doc(
        "messages kept per channel for replay; at most the journal's 5,000, all a restart can reload"))
    rest_rate_per_s: float = Field(10.0, ge=0.0, **_doc(
        "REST requests per second per client IP ([docs/limits.md](docs/limits.md#rest-and-the-uis-api)); "
        "`0` turns rate limiting off"))
    rest_burst: int = Field(40, ge=1, **_doc("REST requests in a burst per client IP"))
    max_body_bytes: int = Field(1024 * 1024, ge=1024, **_doc("largest REST request body"))
    max_upload_bytes: int = Field(1024 * 1024, ge=1024, **_doc(
        "largest upload to the UI's API (`/gradio_api/upload`); larger ones get 413 before they are stored"))
    ui_queue_max: int = Field(256, ge=1, **_doc(
        "UI events waiting to start at most (Gradio's queue `max_size`); past it a new event gets "
        "Gradio's \"queue is full\" (503)"))
    scoring_threads: int = Field(2, ge=1, **_doc(
        "anonymous scoring requests (the playground's `score_text`, `POST /api/sentiment`) running at once, "
        "and the threads of their own that tokenize for them ([docs/limits.md](docs/limits.md#scoring))"))
    scoring_queue: int = Field(8, ge=0, **_doc(
        "anonymous scoring requests waiting for a turn at most; one more is refused at once (503 `BUSY`, "
        "or the playground's \"busy\" message)"))

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            TrustedProxies(value)
        except ValueError:
            raise ValueError("IP addresses or networks such as 10.0.0.0/8, comma-separated, or *") from None
        return value


class LoggingSection(Section):
    """Logs: stdout and a file; tokens are masked at every level."""

    BLANK_MEANS_NONE: ClassVar[frozenset[str]] = frozenset({"log_file"})

    log_level: LogLevel = Field("INFO", **_doc("the root log level: `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`"))
    log_file: FileName | None = Field("logs/server.log", **_doc(
        "logs go to stdout and this file (`LOG_FILE=-` for stdout only); tokens are masked at every level: "
        "`?token=` values and the `Authorization`, `Sec-WebSocket-Protocol` and `Cookie` headers that uvicorn "
        "logs at `DEBUG`"))
    log_json: bool = Field(False, **_doc(
        "one JSON object per log line: `time` (ISO-8601 UTC, `2026-12-07T11:02:03.123Z`), `level`, `logger`, "
        "`message`; while serving a request or socket its `request_id` (also the response's `X-Request-ID`) "
        "or `connection_id`, `path` and `client` (the address `TRUSTED_PROXIES` resolves); a traceback in `exc`"))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_file", mode="before")
    @classmethod
    def _no_file(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() in ("", "-", "none"):
            return None
        return value.strip() if isinstance(value, str) else value


class SourcesSection(Section):
    """The live providers ([docs/sources.md](docs/sources.md)); `sources.SourceService` takes this section as it is.

    Each provider polls at its loop's interval and keeps its own rate budget besides.
    """

    market_poll_s: float = Field(10.0, gt=0, **_doc("market providers' polling interval, seconds"))
    news_poll_s: float = Field(120.0, gt=0, **_doc("news providers' polling interval, seconds"))
    fng_poll_s: float = Field(600.0, gt=0, **_doc("Fear & Greed polling interval, seconds"))
    social_poll_s: float = Field(180.0, gt=0, **_doc("social providers' polling interval, seconds"))
    coingecko_url: HttpUrl = Field("https://api.coingecko.com/api/v3", **_doc("CoinGecko API base URL"))
    binance_url: HttpUrl = Field("https://data-api.binance.vision", **_doc(
        "Binance REST base URL; the default is Binance's market-data-only mirror, since "
        "`https://api.binance.com` answers HTTP 451 to US-hosted Spaces"))
    binance_ws_url: WsUrl = Field("wss://data-stream.binance.vision/ws/!miniTicker@arr", **_doc(
        "Binance price stream URL; the default is Binance's market-data-only mirror, since "
        "`wss://stream.binance.com:9443` refuses US-hosted Spaces with HTTP 451"))
    binance_ws_enabled: bool = Field(True, **_doc("use the Binance price stream"))
    kraken_url: HttpUrl = Field("https://api.kraken.com", **_doc("Kraken API base URL"))
    coinbase_url: HttpUrl = Field("https://api.exchange.coinbase.com", **_doc("Coinbase Exchange API base URL"))
    coinpaprika_url: HttpUrl = Field("https://api.coinpaprika.com/v1", **_doc("CoinPaprika API base URL"))
    coinlore_url: HttpUrl = Field("https://api.coinlore.net/api", **_doc("CoinLore API base URL"))
    fng_url: HttpUrl = Field("https://api.alternative.me", **_doc("alternative.me Fear & Greed API base URL"))
    reddit_url: HttpUrl = Field("https://www.reddit.com", **_doc("Reddit base URL"))
    reddit_subreddits: Subreddits = Field(("CryptoCurrency", "Bitcoin"), **_doc("subreddits read, comma-separated"))
    news_feeds: HttpUrls = Field((
        "https://www.coindesk.com/arc/outboundfeeds/rss/",
        "https://cointelegraph.com/rss",
        "https://decrypt.co/feed",
        "https://www.theblock.co/rss.xml",
        "https://bitcoinmagazine.com/feed",
        "https://cryptoslate.com/feed/",
    ), **_doc("RSS/Atom feed URLs, comma-separated", "CoinDesk, Cointelegraph, Decrypt, The Block, "
              "Bitcoin Magazine, CryptoSlate"))
    cryptopanic_token: SecretStr | None = Field(None, **_doc("CryptoPanic API token; unset skips CryptoPanic"))
    cryptopanic_url: HttpUrl = Field("https://cryptopanic.com/api/developer/v2", **_doc("CryptoPanic API base URL"))
    cryptocompare_key: SecretStr | None = Field(None, **_doc("CryptoCompare API key (optional)"))
    cryptocompare_url: HttpUrl = Field("https://min-api.cryptocompare.com", **_doc("CryptoCompare API base URL"))
    twitter_bearer_token: SecretStr | None = Field(None, **_doc("X/Twitter API bearer token; unset skips Twitter"))
    twitter_url: HttpUrl = Field("https://api.twitter.com/2", **_doc("X/Twitter API base URL"))
    sources_disabled: Names = Field((), **_doc("provider names switched off, comma-separated, e.g. `coinbase,reddit`"))
    sources_user_agent: PlainText | None = Field(None, **_doc("User-Agent sent to providers", "the hub's own"))
    sources_timeout_s: float | None = Field(None, gt=0, **_doc(
        "overrides every provider's own total timeout, seconds", "per provider"))
    sources_backoff_s: float = Field(15.0, ge=0, **_doc("first backoff after a provider fails, seconds"))
    sources_max_backoff_s: float = Field(600.0, ge=0, **_doc("longest backoff of a failing provider, seconds"))
    sources_blocked_recheck_s: float = Field(3600.0, gt=0, **_doc(
        "how long a provider that answered HTTP 451 (blocked where the hub runs) is left alone before "
        "one re-check, seconds"))
    sources_budget_scale: float = Field(1.0, ge=0, **_doc(
        "multiplies every provider's rate budget; `0` turns budgets off (local test servers only)"))
    market_up_window_s: float = Field(60.0, ge=0, **_doc(
        "the market feed is up while a market provider answered within max(3 x `MARKET_POLL_S`, this), seconds"))


# In the order of the README's table.
SECTIONS: tuple[type[Section], ...] = (
    ServerSection, ProcessSection, AccessSection, StorageSection, ClusterSection, InferenceSection,
    LimitsSection, LoggingSection, SourcesSection,
)


class Settings(
    ServerSection, ProcessSection, AccessSection, StorageSection, ClusterSection, InferenceSection,
    LimitsSection, LoggingSection, SourcesSection,
):
    """Everything the app can be told from outside, every section in one flat object.

    `app.py` builds it once with `Settings.from_env(os.environ)` and passes it down; tests build it
    directly with keyword arguments (`Settings(port=0, data_mode="demo")`), which reads no environment.
    """

    BLANK_MEANS_NONE: ClassVar[frozenset[str]] = LimitsSection.BLANK_MEANS_NONE | LoggingSection.BLANK_MEANS_NONE

    @model_validator(mode="before")
    @classmethod
    def _space_defaults(cls, values: Any) -> Any:
        # Defaults that depend on where the app runs: on a Space (SPACE_ID), the proxy connects from a
        # private address, and only the persistent storage folder survives a restart (core/data_place.py).
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if values.get("trusted_proxies") is None:
            values["trusted_proxies"] = default_trusted_proxies(values.get("space_id"))
        if values.get("data_dir") is None:
            values["data_dir"] = default_data_dir(Path(values.get("space_storage_dir") or SPACE_STORAGE_DIR))
        return values

    @model_validator(mode="after")
    def _symbols_known_where_needed(self) -> Settings:
        # The live providers need each symbol's id at every provider (sources/symbols.py); the
        # simulator walks any symbol, so demo runs and benches may track more than the providers know.
        if self.enable_sources and self.data_mode != "demo":
            unknown = [symbol for symbol in self.symbols if symbol not in TRACKABLE_SYMBOLS]
            if unknown:
                raise ValueError(f"SYMBOLS has {','.join(unknown)}, which the live providers do not know: use "
                                 f"{','.join(TRACKABLE_SYMBOLS)}, or DATA_MODE=demo to simulate any symbol")
        untracked = [symbol for symbol, _ in self.simulator_prices if symbol not in self.symbols]
        if untracked:
            raise ValueError(f"SIMULATOR_PRICES names {','.join(untracked)}, which SYMBOLS does not track: "
                             "give start prices only for tracked symbols")
        return self

    @model_validator(mode="after")
    def _one_journal(self) -> Settings:
        if self.reuse_port and self.redis_url is None:
            # Processes sharing a port without Redis each keep a journal and a bus of their own over one
            # database: they fight over the news seq and answer 503 to every news POST.
            raise ValueError("REUSE_PORT=1 needs REDIS_URL: processes sharing a port must share one bus; "
                             "set REDIS_URL or REUSE_PORT=0")
        return self
