"""One typed settings object, read from environment variables once at startup.

Every variable is optional; the README lists them all with their defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["ConfigError", "DataMode", "Settings"]

DataMode = Literal["live", "demo", "auto"]

DEFAULT_SYMBOLS = (
    "BTC,ETH,USDT,XRP,BNB,SOL,USDC,DOGE,TRX,ADA,LINK,AVAX,XLM,SUI,BCH,HBAR,TON,LTC,SHIB,DOT"
)


class ConfigError(ValueError):
    """An environment variable holds a value the app cannot use."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: dict[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _ints(env: dict[str, str], name: str) -> tuple[int, ...]:
    parts = _csv(env, name)
    try:
        values = tuple(int(part) for part in parts)
    except ValueError as exc:
        raise ConfigError(f"{name} must be up to 3 comma-separated integers, got {env[name]!r}") from exc
    # A first value of 0 would switch automatic collection off: garbage cycles would never be freed.
    if len(values) > 3 or any(v < 1 for v in values):
        raise ConfigError(f"{name} must be up to 3 integers >= 1, e.g. 2000,10,10, got {env[name]!r}")
    return values


def _choice(env: dict[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _csv(env: dict[str, str], name: str, default: str = "") -> tuple[str, ...]:
    raw = env.get(name, default)
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything the app can be told from outside. Built by `from_env()`; tests build it directly."""

    port: int = 7860
    data_mode: DataMode = "auto"
    symbols: tuple[str, ...] = tuple(DEFAULT_SYMBOLS.split(","))
    data_dir: Path = Path("data")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "hub"  # key namespace, so several deployments can share one Redis
    leader_lock_ttl_s: float = 5.0  # a dead leader is replaced within about 1.2x this (docs/scaling.md)
    backplane_max_pending: int = 1000  # envelopes waiting for Redis; past it new ones are refused
    backplane_publish_timeout_s: float = 3.0  # a leader that cannot publish this long steps down
    models: tuple[str, ...] | None = None
    device: str = "auto"
    # auto (measured per model at load), fp32, bf16, fp16 (CUDA), int8, onnx-fp32, onnx-int8 (CPU)
    inference_precision: str = "auto"
    inference_exclude: tuple[str, ...] = ()  # variants `auto` never measures, e.g. ("bf16",)
    inference_evalset: Path | None = None  # texts gating `auto`; None: inference/evalset/sample.jsonl
    inference_threads: int | None = None
    inference_max_batch: int | None = None  # None: 32 on CPU, 256 on CUDA
    inference_max_wait_ms: float = 5.0
    model_dir: Path | None = None
    model_lock: Path | None = None  # None: the committed inference/models.lock.json
    self_evaluate: bool = True  # score the shipped sample per model and fit the ensemble on it
    admin_token: str | None = None
    api_tokens: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    log_file: str | None = "logs/server.log"
    log_json: bool = False
    # Cadences, in seconds (SPEC.md). Tests shrink them.
    price_interval_s: float = 1.0
    status_interval_s: float = 5.0
    sentiment_interval_s: float = 60.0
    models_interval_s: float = 10.0
    # Per-connection limits (docs/limits.md explains each default).
    max_frame_bytes: int = 64 * 1024
    outbox_size: int = 256
    messages_per_second: float = 20.0
    message_burst: int = 40
    max_symbols_per_connection: int = 100
    max_keywords: int = 50
    max_sources: int = 50
    max_news_backlog: int = 100  # `?backlog=N` on /ws/news: latest items sent on connect
    idle_timeout_s: float = 300.0
    ws_ping_interval_s: float = 20.0
    # permessage-deflate costs tens of KB per connection (docs/limits.md); off keeps idle sockets small.
    ws_per_message_deflate: bool = False
    max_connections: int = 5000
    max_connections_per_ip: int = 200
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    history_size: int = 1000
    # REST limits and price retention (docs/limits.md, docs/retention.md).
    rest_rate_per_s: float = 10.0  # per client IP; 0 turns REST rate limiting off
    rest_burst: int = 40
    max_body_bytes: int = 1024 * 1024
    price_retention_days: float = 7.0  # raw 10 s points
    price_1m_retention_days: float = 30.0  # 1m buckets; 1h and 1d buckets are kept
    price_prune_interval_s: float = 3600.0
    # Server process (docs/scaling.md): event loop, one port shared by several processes, GC tuning.
    server_loop: str = "auto"  # auto (uvloop when installed), asyncio, uvloop
    reuse_port: bool = False  # SO_REUSEPORT: several processes (with REDIS_URL) listen on one PORT
    gc_threshold: tuple[int, ...] = (2000, 10, 10)  # gc.set_threshold(); Python's is (700, 10, 10)
    gc_freeze: bool = True  # gc.freeze() once the server has started (docs/scaling.md)
    enable_ui: bool = True
    enable_sources: bool = True
    enable_inference: bool = True
    simulator_seed: int = 7
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read every setting from the environment, failing early with the variable's name."""
        env = dict(os.environ if environ is None else environ)
        mode = env.get("DATA_MODE", "auto").strip().lower() or "auto"
        if mode not in ("live", "demo", "auto"):
            raise ConfigError(f"DATA_MODE must be live, demo or auto, got {mode!r}")
        symbols = tuple(s.upper() for s in _csv(env, "SYMBOLS", DEFAULT_SYMBOLS))
        if not symbols:
            raise ConfigError("SYMBOLS must name at least one symbol, e.g. SYMBOLS=BTC,ETH")
        device = env.get("DEVICE", "auto").strip().lower() or "auto"
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise ConfigError(f"DEVICE must be auto, cpu or cuda, got {device!r}")
        models = _csv(env, "MODELS") or None
        log_file = env.get("LOG_FILE", "logs/server.log").strip() or None
        return cls(
            port=_int(env, "PORT", 7860, minimum=0),
            data_mode=mode,  # type: ignore[arg-type]
            symbols=symbols,
            data_dir=Path(env.get("DATA_DIR", "data")),
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("REDIS_PREFIX", "hub").strip() or "hub",
            leader_lock_ttl_s=_float(env, "LEADER_LOCK_TTL_S", 5.0, minimum=2.0),
            backplane_max_pending=_int(env, "BACKPLANE_MAX_PENDING", 1000, minimum=1),
            backplane_publish_timeout_s=_float(env, "BACKPLANE_PUBLISH_TIMEOUT_S", 3.0, minimum=0.5),
            models=models,
            device=device,
            inference_precision=env.get("INFERENCE_PRECISION", "auto").strip().lower() or "auto",
            inference_exclude=tuple(part.lower() for part in _csv(env, "INFERENCE_EXCLUDE")),
            inference_evalset=Path(env["INFERENCE_EVALSET"]) if env.get("INFERENCE_EVALSET") else None,
            inference_threads=_int(env, "INFERENCE_THREADS", 0, minimum=0) or None,
            inference_max_batch=_int(env, "INFERENCE_MAX_BATCH", 0, minimum=0) or None,
            inference_max_wait_ms=_float(env, "INFERENCE_MAX_WAIT_MS", 5.0, minimum=0.0),
            model_dir=Path(env["MODEL_DIR"]) if env.get("MODEL_DIR") else None,
            model_lock=Path(env["MODEL_LOCK"]) if env.get("MODEL_LOCK") else None,
            self_evaluate=env.get("SELF_EVALUATE", "1").lower() not in ("0", "false", "no"),
            admin_token=env.get("ADMIN_TOKEN") or None,
            api_tokens=_csv(env, "API_TOKENS"),
            allowed_origins=_csv(env, "ALLOWED_ORIGINS"),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            log_file=None if log_file in ("-", "none") else log_file,
            log_json=env.get("LOG_JSON", "").lower() in ("1", "true", "yes"),
            price_interval_s=_float(env, "PRICE_INTERVAL_S", 1.0, minimum=0.01),
            status_interval_s=_float(env, "STATUS_INTERVAL_S", 5.0, minimum=0.01),
            sentiment_interval_s=_float(env, "SENTIMENT_INTERVAL_S", 60.0, minimum=0.01),
            models_interval_s=_float(env, "MODELS_INTERVAL_S", 10.0, minimum=0.01),
            max_frame_bytes=_int(env, "MAX_FRAME_BYTES", 64 * 1024, minimum=256),
            outbox_size=_int(env, "OUTBOX_SIZE", 256, minimum=4),
            messages_per_second=_float(env, "MESSAGES_PER_SECOND", 20.0, minimum=0.1),
            message_burst=_int(env, "MESSAGE_BURST", 40, minimum=1),
            max_symbols_per_connection=_int(env, "MAX_SYMBOLS_PER_CONNECTION", 100, minimum=1),
            max_keywords=_int(env, "MAX_KEYWORDS", 50, minimum=1),
            max_sources=_int(env, "MAX_SOURCES", 50, minimum=1),
            max_news_backlog=_int(env, "MAX_NEWS_BACKLOG", 100, minimum=0),
            idle_timeout_s=_float(env, "IDLE_TIMEOUT_S", 300.0, minimum=1.0),
            ws_ping_interval_s=_float(env, "WS_PING_INTERVAL_S", 20.0, minimum=0.5),
            ws_per_message_deflate=env.get("WS_PER_MESSAGE_DEFLATE", "").lower() in ("1", "true", "yes"),
            max_connections=_int(env, "MAX_CONNECTIONS", 5000, minimum=1),
            max_connections_per_ip=_int(env, "MAX_CONNECTIONS_PER_IP", 200, minimum=1),
            trusted_proxies=_csv(env, "TRUSTED_PROXIES", "127.0.0.1"),
            history_size=_int(env, "HISTORY_SIZE", 1000, minimum=10),
            rest_rate_per_s=_float(env, "REST_RATE_PER_S", 10.0, minimum=0.0),
            rest_burst=_int(env, "REST_BURST", 40, minimum=1),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
            price_retention_days=_float(env, "PRICE_RETENTION_DAYS", 7.0, minimum=0.01),
            price_1m_retention_days=_float(env, "PRICE_1M_RETENTION_DAYS", 30.0, minimum=0.01),
            price_prune_interval_s=_float(env, "PRICE_PRUNE_INTERVAL_S", 3600.0, minimum=1.0),
            server_loop=_choice(env, "SERVER_LOOP", "auto", ("auto", "asyncio", "uvloop")),
            reuse_port=env.get("REUSE_PORT", "").lower() in ("1", "true", "yes"),
            gc_threshold=_ints(env, "GC_THRESHOLD") or (2000, 10, 10),
            gc_freeze=env.get("GC_FREEZE", "1").lower() not in ("0", "false", "no"),
            enable_ui=env.get("ENABLE_UI", "1").lower() not in ("0", "false", "no"),
            enable_sources=env.get("ENABLE_SOURCES", "1").lower() not in ("0", "false", "no"),
            enable_inference=env.get("ENABLE_INFERENCE", "1").lower() not in ("0", "false", "no"),
            simulator_seed=_int(env, "SIMULATOR_SEED", 7),
            extra=env,
        )
