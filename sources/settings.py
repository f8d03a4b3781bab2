"""`SourceSettings`: every knob of the source layer, read once from the environment.

Tests build it directly (pointing base URLs at a local server); the app calls `from_env()`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .fear_greed import DEFAULT_FNG_URL
from .market.binance import DEFAULT_BINANCE_URL, DEFAULT_BINANCE_WS_URL
from .market.coinbase import DEFAULT_COINBASE_URL
from .market.coingecko import DEFAULT_COINGECKO_URL
from .market.coinlore import DEFAULT_COINLORE_URL
from .market.coinpaprika import DEFAULT_COINPAPRIKA_URL
from .market.kraken import DEFAULT_KRAKEN_URL
from .news import DEFAULT_CRYPTOCOMPARE_URL, DEFAULT_CRYPTOPANIC_URL
from .rss import DEFAULT_FEEDS, Feed, feeds_from_urls
from .social import DEFAULT_REDDIT_URL, DEFAULT_SUBREDDITS, DEFAULT_TWITTER_URL
from .symbols import SYMBOLS, is_known_symbol

__all__ = ["ENV_VARS", "SourceSettings"]

# Every environment variable `from_env` reads, for the README and for a test that keeps it true.
ENV_VARS: tuple[str, ...] = (
    "SYMBOLS",
    "MARKET_POLL_S",
    "NEWS_POLL_S",
    "FNG_POLL_S",
    "SOCIAL_POLL_S",
    "COINGECKO_URL",
    "BINANCE_URL",
    "BINANCE_WS_URL",
    "BINANCE_WS_ENABLED",
    "KRAKEN_URL",
    "COINBASE_URL",
    "COINPAPRIKA_URL",
    "COINLORE_URL",
    "FNG_URL",
    "REDDIT_URL",
    "REDDIT_SUBREDDITS",
    "NEWS_FEEDS",
    "CRYPTOPANIC_TOKEN",
    "CRYPTOPANIC_URL",
    "CRYPTOCOMPARE_KEY",
    "CRYPTOCOMPARE_URL",
    "TWITTER_BEARER_TOKEN",
    "TWITTER_URL",
    "SOURCES_DISABLED",
    "SOURCES_USER_AGENT",
    "SOURCES_TIMEOUT_S",
    "SOURCES_BACKOFF_S",
    "SOURCES_MAX_BACKOFF_S",
    "SOURCES_BUDGET_SCALE",
    "MARKET_UP_WINDOW_S",
)


@dataclass(frozen=True)
class SourceSettings:
    """Configuration of `SourceService`; validated on construction.

    Poll intervals are how often each loop runs; each provider also has its own rate budget
    (`min_interval_s`), so a market round at 10 s calls CoinGecko only every 30 s.
    `budget_scale` multiplies those budgets (0 turns them off; for tests only).
    """

    symbols: tuple[str, ...] = SYMBOLS
    market_poll_s: float = 10.0
    news_poll_s: float = 120.0
    fng_poll_s: float = 600.0
    social_poll_s: float = 180.0
    coingecko_url: str = DEFAULT_COINGECKO_URL
    binance_url: str = DEFAULT_BINANCE_URL
    binance_ws_url: str = DEFAULT_BINANCE_WS_URL
    binance_ws_enabled: bool = True
    kraken_url: str = DEFAULT_KRAKEN_URL
    coinbase_url: str = DEFAULT_COINBASE_URL
    coinpaprika_url: str = DEFAULT_COINPAPRIKA_URL
    coinlore_url: str = DEFAULT_COINLORE_URL
    fng_url: str = DEFAULT_FNG_URL
    reddit_url: str = DEFAULT_REDDIT_URL
    subreddits: tuple[str, ...] = DEFAULT_SUBREDDITS
    news_feeds: tuple[Feed, ...] = DEFAULT_FEEDS
    cryptopanic_token: str | None = field(default=None, repr=False)
    cryptopanic_url: str = DEFAULT_CRYPTOPANIC_URL
    cryptocompare_key: str | None = field(default=None, repr=False)
    cryptocompare_url: str = DEFAULT_CRYPTOCOMPARE_URL
    twitter_bearer_token: str | None = field(default=None, repr=False)
    twitter_url: str = DEFAULT_TWITTER_URL
    disabled: frozenset[str] = frozenset()
    user_agent: str | None = None
    provider_timeout_s: float | None = None  # overrides every provider's own total timeout
    # Failover policy.
    failure_threshold: int = 3
    base_backoff_s: float = 15.0
    max_backoff_s: float = 600.0
    budget_scale: float = 1.0
    quote_max_age_s: float = 120.0
    aggregate_max_age_s: float = 900.0
    stream_fresh_s: float = 10.0
    stream_idle_timeout_s: float = 30.0
    market_up_min_window_s: float = 60.0

    def __post_init__(self) -> None:
        unknown = [s for s in self.symbols if not is_known_symbol(s)]
        if unknown:
            raise ValueError(
                f"SYMBOLS has unknown symbols {unknown}; expected a subset of {', '.join(SYMBOLS)}"
            )
        if not self.symbols:
            raise ValueError("SYMBOLS must name at least one symbol")
        object.__setattr__(self, "symbols", tuple(s.strip().upper() for s in self.symbols))
        for name in ("market_poll_s", "news_poll_s", "fng_poll_s", "social_poll_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name.upper()} must be > 0 seconds, got {value!r}")
        if self.provider_timeout_s is not None and not self.provider_timeout_s > 0:
            raise ValueError(f"SOURCES_TIMEOUT_S must be > 0 seconds, got {self.provider_timeout_s!r}")
        if self.budget_scale < 0:
            raise ValueError(f"budget_scale must be >= 0, got {self.budget_scale!r}")

    @property
    def market_up_window_s(self) -> float:
        """A market provider answering within this window means the market feed is up."""
        return max(3.0 * self.market_poll_s, self.market_up_min_window_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SourceSettings:
        """Read the settings from `env` (default `os.environ`); unset variables keep defaults."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}

        def text(var: str) -> str | None:
            value = env.get(var, "").strip()
            return value or None

        def seconds(var: str, attr: str) -> None:
            value = text(var)
            if value is None:
                return
            try:
                values[attr] = float(value)
            except ValueError:
                raise ValueError(f"{var} must be a number of seconds, got {value!r}") from None

        def items(var: str) -> tuple[str, ...] | None:
            value = text(var)
            return tuple(part.strip() for part in value.split(",") if part.strip()) if value else None

        if (symbols := items("SYMBOLS")) is not None:
            values["symbols"] = symbols
        seconds("MARKET_POLL_S", "market_poll_s")
        seconds("NEWS_POLL_S", "news_poll_s")
        seconds("FNG_POLL_S", "fng_poll_s")
        seconds("SOCIAL_POLL_S", "social_poll_s")
        seconds("SOURCES_TIMEOUT_S", "provider_timeout_s")
        seconds("SOURCES_BACKOFF_S", "base_backoff_s")
        seconds("SOURCES_MAX_BACKOFF_S", "max_backoff_s")
        seconds("MARKET_UP_WINDOW_S", "market_up_min_window_s")
        # 0 turns provider budgets off: for local test servers only.
        seconds("SOURCES_BUDGET_SCALE", "budget_scale")
        for var, attr in (
            ("COINGECKO_URL", "coingecko_url"),
            ("BINANCE_URL", "binance_url"),
            ("BINANCE_WS_URL", "binance_ws_url"),
            ("KRAKEN_URL", "kraken_url"),
            ("COINBASE_URL", "coinbase_url"),
            ("COINPAPRIKA_URL", "coinpaprika_url"),
            ("COINLORE_URL", "coinlore_url"),
            ("FNG_URL", "fng_url"),
            ("REDDIT_URL", "reddit_url"),
            ("CRYPTOPANIC_TOKEN", "cryptopanic_token"),
            ("CRYPTOPANIC_URL", "cryptopanic_url"),
            ("CRYPTOCOMPARE_KEY", "cryptocompare_key"),
            ("CRYPTOCOMPARE_URL", "cryptocompare_url"),
            ("TWITTER_BEARER_TOKEN", "twitter_bearer_token"),
            ("TWITTER_URL", "twitter_url"),
            ("SOURCES_USER_AGENT", "user_agent"),
        ):
            if (value := text(var)) is not None:
                values[attr] = value
        if (enabled := text("BINANCE_WS_ENABLED")) is not None:
            if enabled.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"BINANCE_WS_ENABLED must be true or false, got {enabled!r}")
            values["binance_ws_enabled"] = enabled.lower() in ("1", "true", "yes", "on")
        if (subs := items("REDDIT_SUBREDDITS")) is not None:
            values["subreddits"] = subs
        if (feeds := items("NEWS_FEEDS")) is not None:
            values["news_feeds"] = feeds_from_urls(feeds)
        if (disabled := items("SOURCES_DISABLED")) is not None:
            values["disabled"] = frozenset(name.lower() for name in disabled)
        return cls(**values)  # type: ignore[arg-type]
