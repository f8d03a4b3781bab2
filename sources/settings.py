"""`SourceSettings`: every knob of the source layer, built from the app's settings (`from_settings`).

Tests build it directly (pointing base URLs at a local server). The environment is read only by
`core.config.Settings.from_env`, once, at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.config import Settings, SourcesSection
from core.settings_base import env_name, reveal

from .rss import Feed, feeds_from_urls
from .symbols import SYMBOLS, is_known_symbol

__all__ = ["ENV_VARS", "SourceSettings"]

# Every environment variable the source layer is configured by, for the README and a test.
ENV_VARS: tuple[str, ...] = ("SYMBOLS", *(env_name(name) for name in SourcesSection.model_fields))

# The defaults live in the settings model (core/config.py), one place for the app and for tests.
_DEFAULTS = SourcesSection()


@dataclass(frozen=True)
class SourceSettings:
    """Configuration of `SourceService`; validated on construction.

    Poll intervals are how often each loop runs; each provider also has its own rate budget
    (`min_interval_s`), so a market round at 10 s calls CoinGecko only every 30 s.
    `budget_scale` multiplies those budgets (0 turns them off; for tests only).
    """

    symbols: tuple[str, ...] = SYMBOLS
    market_poll_s: float = _DEFAULTS.market_poll_s
    news_poll_s: float = _DEFAULTS.news_poll_s
    fng_poll_s: float = _DEFAULTS.fng_poll_s
    social_poll_s: float = _DEFAULTS.social_poll_s
    coingecko_url: str = _DEFAULTS.coingecko_url
    binance_url: str = _DEFAULTS.binance_url
    binance_ws_url: str = _DEFAULTS.binance_ws_url
    binance_ws_enabled: bool = _DEFAULTS.binance_ws_enabled
    kraken_url: str = _DEFAULTS.kraken_url
    coinbase_url: str = _DEFAULTS.coinbase_url
    coinpaprika_url: str = _DEFAULTS.coinpaprika_url
    coinlore_url: str = _DEFAULTS.coinlore_url
    fng_url: str = _DEFAULTS.fng_url
    reddit_url: str = _DEFAULTS.reddit_url
    subreddits: tuple[str, ...] = _DEFAULTS.reddit_subreddits
    news_feeds: tuple[Feed, ...] = feeds_from_urls(_DEFAULTS.news_feeds)
    cryptopanic_token: str | None = field(default=None, repr=False)
    cryptopanic_url: str = _DEFAULTS.cryptopanic_url
    cryptocompare_key: str | None = field(default=None, repr=False)
    cryptocompare_url: str = _DEFAULTS.cryptocompare_url
    twitter_bearer_token: str | None = field(default=None, repr=False)
    twitter_url: str = _DEFAULTS.twitter_url
    disabled: frozenset[str] = frozenset()
    user_agent: str | None = None
    provider_timeout_s: float | None = None  # overrides every provider's own total timeout
    # Failover policy.
    failure_threshold: int = 3
    base_backoff_s: float = _DEFAULTS.sources_backoff_s
    max_backoff_s: float = _DEFAULTS.sources_max_backoff_s
    blocked_recheck_s: float = _DEFAULTS.sources_blocked_recheck_s
    budget_scale: float = _DEFAULTS.sources_budget_scale
    quote_max_age_s: float = 120.0
    aggregate_max_age_s: float = 900.0
    stream_fresh_s: float = 10.0
    stream_idle_timeout_s: float = 30.0
    market_up_min_window_s: float = _DEFAULTS.market_up_window_s

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
        if not self.blocked_recheck_s > 0:
            raise ValueError(f"SOURCES_BLOCKED_RECHECK_S must be > 0 seconds, got {self.blocked_recheck_s!r}")
        if self.budget_scale < 0:
            raise ValueError(f"budget_scale must be >= 0, got {self.budget_scale!r}")

    @property
    def market_up_window_s(self) -> float:
        """A market provider answering within this window means the market feed is up."""
        return max(3.0 * self.market_poll_s, self.market_up_min_window_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceSettings:
        """Build the source layer's settings from the app's; tokens leave their `SecretStr` only here."""
        return cls(
            symbols=settings.symbols,
            market_poll_s=settings.market_poll_s,
            news_poll_s=settings.news_poll_s,
            fng_poll_s=settings.fng_poll_s,
            social_poll_s=settings.social_poll_s,
            coingecko_url=settings.coingecko_url,
            binance_url=settings.binance_url,
            binance_ws_url=settings.binance_ws_url,
            binance_ws_enabled=settings.binance_ws_enabled,
            kraken_url=settings.kraken_url,
            coinbase_url=settings.coinbase_url,
            coinpaprika_url=settings.coinpaprika_url,
            coinlore_url=settings.coinlore_url,
            fng_url=settings.fng_url,
            reddit_url=settings.reddit_url,
            subreddits=settings.reddit_subreddits,
            news_feeds=feeds_from_urls(settings.news_feeds),
            cryptopanic_token=reveal(settings.cryptopanic_token),
            cryptopanic_url=settings.cryptopanic_url,
            cryptocompare_key=reveal(settings.cryptocompare_key),
            cryptocompare_url=settings.cryptocompare_url,
            twitter_bearer_token=reveal(settings.twitter_bearer_token),
            twitter_url=settings.twitter_url,
            disabled=frozenset(name.lower() for name in settings.sources_disabled),
            user_agent=settings.sources_user_agent,
            provider_timeout_s=settings.sources_timeout_s,
            base_backoff_s=settings.sources_backoff_s,
            max_backoff_s=settings.sources_max_backoff_s,
            blocked_recheck_s=settings.sources_blocked_recheck_s,
            budget_scale=settings.sources_budget_scale,
            market_up_min_window_s=settings.market_up_window_s,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SourceSettings:
        """Read the settings from `env` the way the app does; unset variables keep defaults.

        Raises:
            ValueError: a bad value, naming its variable (`core.config.ConfigError`), or unknown symbols.
        """
        return cls.from_settings(Settings.from_env(env))
