"""Providers in pools: priority, rate budget, circuit breaker, Retry-After, geo-blocks and honest health.

A `SourcePool` holds the providers of one category. Every fetch goes through the same gate
(credentials -> Retry-After hold -> breaker -> token bucket) and the same bookkeeping, so a
provider cannot forget to count a failure. Fetches run concurrently, each under its own total
timeout, so one hung upstream never delays the others.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Collection, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, TypedDict, TypeVar, Unpack

import httpx

from core.clock import utc_now
from core.config import SourcesSection
from core.records import SourceHealth
from core.settings_base import env_name, reveal

from .breaker import CircuitBreaker, TokenBucket
from .errors import SourceError, UpstreamBlocked, UpstreamRateLimited, UpstreamTimeout
from .http import DEFAULT_USER_AGENT, UpstreamHttp

__all__ = [
    "Category",
    "FetchResult",
    "Provider",
    "ProviderState",
    "ProviderOptions",
    "ProviderSpec",
    "SourcePool",
    "section_default",
    "unblocked_fix",
]

logger = logging.getLogger(__name__)

Category = Literal["market_data", "news", "sentiment", "social"]
T = TypeVar("T")

Clock = Callable[[], float]

@dataclass(frozen=True)
class ProviderSpec:
    """What a provider class declares about itself, in one place (its `spec` class attribute).

    Args:
        name: lower-case id used in logs, health and (for prices) `PriceQuote.source`.
        category: the pool it belongs to.
        priority: 1 is the first choice; larger numbers are fallbacks.
        timeout_s: total time one fetch may take, all requests included.
        min_interval_s: the rate budget: at most one fetch per this many seconds (token bucket).
        url_setting: the `SourcesSection` field holding the API root; its default there is used
            when the provider is built without one.
        max_bytes: body size cap per request.
        secret_setting: the `SourcesSection` field holding the key or token of a provider that
            cannot run without one; without it the provider is `inactive`, and the reason names
            the variable ("TWITTER_BEARER_TOKEN not set").
        default_unblocked: the default API root serves where others answer HTTP 451; a
            geo-blocked provider on another root names it as the fix in its health reason.
    """

    name: str
    category: Category
    priority: int
    timeout_s: float
    min_interval_s: float
    url_setting: str | None = None
    max_bytes: int = 2_000_000
    secret_setting: str | None = None
    default_unblocked: bool = False


def section_default(field: str) -> Any:
    """Return the default `SourcesSection` declares for `field` (core/config.py, the one place)."""
    return SourcesSection.model_fields[field].default


def unblocked_fix(url_setting: str, url: str) -> str | None:
    """Return what to set when `url` (from `url_setting`) is geo-blocked here; None when it is the default."""
    default = str(section_default(url_setting))
    if url.rstrip("/") == default.rstrip("/"):
        return None
    return f"set {env_name(url_setting)}={default}"


class ProviderOptions(TypedDict, total=False):
    """Per-instance overrides of a provider's `spec` (tests, one provider per feed)."""

    name: str
    base_url: str | None
    secret: str | None
    priority: int
    timeout_s: float
    min_interval_s: float
    max_bytes: int


class Provider(ABC, Generic[T]):
    """One upstream that yields typed records. Subclasses declare a `spec` and implement `fetch`.

    Args:
        options: overrides of the class's `spec` for this instance; `base_url` (default: the
            `SourcesSection` default of `spec.url_setting`) and `secret` come from the settings in
            the app, see `options_from`. A provider whose spec names a secret and that has none is
            never fetched and reports `inactive` with the reason.
    """

    spec: ClassVar[ProviderSpec]

    def __init__(self, **options: Unpack[ProviderOptions]) -> None:
        spec = self.spec
        self.name = options.get("name", spec.name)
        self.category: Category = spec.category
        self.priority = options.get("priority", spec.priority)
        self.timeout_s = options.get("timeout_s", spec.timeout_s)
        self.min_interval_s = options.get("min_interval_s", spec.min_interval_s)
        self.max_bytes = options.get("max_bytes", spec.max_bytes)
        default_url = section_default(spec.url_setting) if spec.url_setting is not None else ""
        self.base_url = (options.get("base_url") or default_url).rstrip("/")
        self._secret = options.get("secret") or ""
        self.unavailable_reason = (
            f"{env_name(spec.secret_setting)} not set" if spec.secret_setting is not None and not self._secret else None
        )
        if not self.name or self.name != self.name.lower():
            raise ValueError(f"provider name must be non-empty lower case, got {self.name!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"{self.name}: timeout_s must be > 0, got {self.timeout_s!r}")
        if self.min_interval_s < 0:
            raise ValueError(f"{self.name}: min_interval_s must be >= 0, got {self.min_interval_s!r}")
        # Reasons for items the last parse skipped (absurd values, missing fields); the pool
        # logs them and shows them in health without failing the whole fetch.
        self.last_rejects: list[str] = []

    @classmethod
    def options_from(cls, settings: SourcesSection) -> ProviderOptions:
        """Return the API root and the secret (revealed) this class's `spec` names, read from `settings`."""
        options: ProviderOptions = {}
        if cls.spec.url_setting is not None:
            options["base_url"] = getattr(settings, cls.spec.url_setting)
        if cls.spec.secret_setting is not None:
            options["secret"] = reveal(getattr(settings, cls.spec.secret_setting))
        return options

    def blocked_fix(self) -> str | None:
        """Return what to set when this provider is geo-blocked here, or None if nothing known helps."""
        spec = self.spec
        if not spec.default_unblocked or spec.url_setting is None:
            return None
        return unblocked_fix(spec.url_setting, self.base_url)

    def fresh_rejects(self) -> list[str]:
        """Start this fetch's `last_rejects` empty and return it, for the parser to fill."""
        self.last_rejects = []
        return self.last_rejects

    @abstractmethod
    async def fetch(self, http: UpstreamHttp) -> list[T]:
        """Fetch and parse; return records, or raise a `SourceError`.

        Return an empty list only for "nothing new" (e.g. HTTP 304); a response without a
        single usable record must raise `UpstreamGarbage`.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} priority={self.priority}>"


@dataclass(frozen=True)
class FetchResult(Generic[T]):
    """What one successful fetch produced."""

    provider: str
    records: list[T]
    latency_ms: float
    fetched_at: datetime


@dataclass(eq=False)
class ProviderState:
    """Everything the pool knows about one provider: budget, breaker, counters, health."""

    name: str
    category: Category
    priority: int
    _: KW_ONLY
    bucket: TokenBucket
    breaker: CircuitBreaker
    stale_after_s: float
    blocked_recheck_s: float  # how long a geo-blocked provider (HTTP 451) is left alone before one re-check
    unavailable_reason: str | None = None
    # Set while the upstream refuses this machine's location (HTTP 451): the words and the fix.
    blocked_reason: str | None = field(default=None, init=False)
    last_success: datetime | None = field(default=None, init=False)
    last_success_at: float | None = field(default=None, init=False)  # monotonic
    last_error: str | None = field(default=None, init=False)
    latency_ms: float | None = field(default=None, init=False)
    successes: int = field(default=0, init=False)
    failures: int = field(default=0, init=False)
    last_rejects: list[str] = field(default_factory=list, init=False)
    hold_until: float | None = field(default=None, init=False)  # monotonic; set by Retry-After

    def gate(self, now: float) -> str | None:
        """Return why a fetch may not go out now, or None when it may (consumes budget)."""
        if self.unavailable_reason is not None:
            return self.unavailable_reason
        if self.hold_until is not None and now < self.hold_until:
            return f"holding for Retry-After, {self.hold_until - now:.0f} s left"
        if not self.breaker.allow(now):
            return f"blocked here: {self.blocked_reason}" if self.blocked_reason else "circuit open"
        if not self.bucket.try_acquire(now):
            self.breaker.release_probe()
            return f"rate budget: next call in {self.bucket.seconds_until_token(now):.1f} s"
        return None

    def record_success(self, now: float, latency_ms: float, rejects: Sequence[str] = ()) -> None:
        self.successes += 1
        self.breaker.record_success()
        self.hold_until = None
        self.blocked_reason = None
        self.last_success = utc_now()
        self.last_success_at = now
        self.latency_ms = round(latency_ms, 1)
        self.last_rejects = list(rejects)

    def record_failure(self, now: float, error: BaseException, latency_ms: float | None = None) -> None:
        self.failures += 1
        self.breaker.record_failure(now)
        self.last_error = f"{type(error).__name__}: {error}"
        if latency_ms is not None:
            self.latency_ms = round(latency_ms, 1)

    def record_blocked(self, now: float, error: UpstreamBlocked, fix: str | None = None) -> None:
        """Stop calling a provider that refuses this location; one re-check per `blocked_recheck_s`.

        Call it after `record_failure` with the same error: the breaker opens at once, without
        the failure streak and backoff ladder of a transient fault.
        """
        self.blocked_reason = f"{error.summary}; {fix}" if fix else error.summary
        self.breaker.trip(now, self.blocked_recheck_s)

    def hold(self, now: float, seconds: float) -> None:
        """Send nothing to this provider for `seconds` (the upstream's Retry-After)."""
        self.hold_until = now + seconds

    def succeeded_within(self, now: float, seconds: float) -> bool:
        return self.last_success_at is not None and now - self.last_success_at <= seconds

    def health(self, now: float) -> SourceHealth:
        """Return the provider's status: active, degraded or inactive, with the reason."""
        status, reason = self._status(now)
        return SourceHealth(
            name=self.name,
            category=self.category,
            status=status,
            priority=self.priority,
            last_success=self.last_success,
            last_error=self.last_error,
            latency_ms=self.latency_ms,
            reason=reason,
        )

    def _status(self, now: float) -> tuple[Literal["active", "degraded", "inactive"], str | None]:
        if self.unavailable_reason is not None:
            return "inactive", self.unavailable_reason
        breaker = self.breaker
        if breaker.state != "closed" and self.blocked_reason is not None:
            reopens = breaker.reopens_at
            when = f"re-check in {_duration(reopens - now)}" if reopens is not None else "re-checking now"
            return "inactive", f"blocked here: {self.blocked_reason}; {when}"
        if breaker.state != "closed":
            reopens = breaker.reopens_at
            when = f"next probe in {max(0.0, reopens - now):.0f} s" if reopens is not None else "probing"
            return (
                "inactive",
                f"circuit open after {breaker.consecutive_failures} consecutive failures; {when}",
            )
        if self.last_success_at is None:
            if self.failures:
                return "inactive", f"never succeeded; {self.failures} failures so far"
            return "inactive", "not polled yet"
        if self.hold_until is not None and now < self.hold_until:
            return "degraded", f"rate limited by upstream; retry in {self.hold_until - now:.0f} s"
        if breaker.consecutive_failures:
            return "degraded", f"{breaker.consecutive_failures} consecutive failures since last success"
        age = now - self.last_success_at
        if age > self.stale_after_s:
            return (
                "degraded",
                f"stale: last success {age:.0f} s ago (expected within {self.stale_after_s:.0f} s)",
            )
        if self.last_rejects:
            return (
                "active",
                f"last fetch skipped {len(self.last_rejects)} bad items, e.g. {self.last_rejects[0]}",
            )
        return "active", None


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds >= 7200.0:
        return f"{seconds / 3600.0:.1f} h"
    if seconds >= 120.0:
        return f"{math.ceil(seconds / 60.0):.0f} min"
    return f"{seconds:.0f} s"


class SourcePool(Generic[T]):
    """The providers of one category, fetched under one policy.

    Args:
        category: market_data, news, sentiment or social.
        providers: the pool's providers; names must be unique.
        client: shared httpx client; the pool never closes it.
        clock: monotonic seconds (injectable for tests).
        failure_threshold, base_backoff_s, max_backoff_s: circuit breaker settings.
        blocked_recheck_s: how long a geo-blocked provider (HTTP 451) is not called; then one
            fetch re-checks.
        Backoffs, re-check and budget scale default to their `SourcesSection` defaults.
        poll_interval_s: how often the owner polls; a provider with no success for 3 intervals
            (or 3 of its own budget intervals, whichever is longer) is reported stale.
        budget_scale: multiplies every provider's `min_interval_s` (0 disables budgets, for tests).
        user_agent: sent with every request.

    Trade-off: `fetch_all` asks every eligible provider at once (fresh data for fusion, instant
    failover) at the cost of more upstream calls; budgets keep that within each provider's rules.
    """

    def __init__(
        self,
        category: Category,
        providers: Sequence[Provider[T]],
        *,
        client: httpx.AsyncClient,
        clock: Clock = time.monotonic,
        failure_threshold: int = 3,
        base_backoff_s: float = section_default("sources_backoff_s"),
        max_backoff_s: float = section_default("sources_max_backoff_s"),
        blocked_recheck_s: float = section_default("sources_blocked_recheck_s"),
        poll_interval_s: float = 30.0,
        budget_scale: float = section_default("sources_budget_scale"),
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        names = [provider.name for provider in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique in a pool, got {names}")
        wrong = [p.name for p in providers if p.category != category]
        if wrong:
            raise ValueError(f"providers {wrong} do not belong to category {category!r}")
        if budget_scale < 0:
            raise ValueError(f"budget_scale must be >= 0, got {budget_scale!r}")
        if blocked_recheck_s <= 0:
            raise ValueError(f"blocked_recheck_s must be > 0, got {blocked_recheck_s!r}")
        self.category: Category = category
        self._client = client
        self._clock = clock
        self._user_agent = user_agent
        self._failure_threshold = failure_threshold
        self._base_backoff_s = base_backoff_s
        self._max_backoff_s = max_backoff_s
        self._blocked_recheck_s = blocked_recheck_s
        self._poll_interval_s = poll_interval_s
        self._budget_scale = budget_scale
        self._providers: dict[str, Provider[T]] = {}
        self._states: dict[str, ProviderState] = {}
        for provider in sorted(providers, key=lambda p: p.priority):
            self._providers[provider.name] = provider
            self._states[provider.name] = self._new_state(provider)

    def state(self, name: str) -> ProviderState:
        """Return the bookkeeping of provider `name`."""
        try:
            return self._states[name]
        except KeyError:
            raise KeyError(
                f"no provider {name!r} in the {self.category} pool; have {list(self._states)}"
            ) from None

    def add_external(self, name: str, *, priority: int, stale_after_s: float) -> ProviderState:
        """Register a provider the pool does not fetch itself (a stream) so it shows in health."""
        if name in self._states:
            raise ValueError(f"provider {name!r} already in the {self.category} pool")
        state = ProviderState(
            name,
            self.category,
            priority,
            bucket=TokenBucket(0),
            breaker=self._new_breaker(),
            stale_after_s=stale_after_s,
            blocked_recheck_s=self._blocked_recheck_s,
        )
        self._states[name] = state
        return state

    async def fetch_all(self, *, exclude: Collection[str] = ()) -> list[FetchResult[T]]:
        """Fetch every eligible provider concurrently; return the successes in priority order."""
        runs = [self._fetch(p) for name, p in self._providers.items() if name not in exclude]
        results = await asyncio.gather(*runs)
        return [result for result in results if result is not None]

    async def fetch_each(self, *, exclude: Collection[str] = ()) -> AsyncGenerator[FetchResult[T], None]:
        """Fetch every eligible provider concurrently; yield each success as soon as it lands.

        Use it under `contextlib.aclosing` so that leaving the loop early cancels the fetches
        still in flight.
        """
        tasks = [
            asyncio.create_task(self._fetch(p), name=f"sources.fetch.{name}")
            for name, p in self._providers.items()
            if name not in exclude
        ]
        try:
            for next_done in asyncio.as_completed(tasks):
                result = await next_done
                if result is not None:
                    yield result
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def fetch_first(self) -> FetchResult[T] | None:
        """Try providers in priority order; return the first success (None if all fail or skip)."""
        for provider in self._providers.values():
            result = await self._fetch(provider)
            if result is not None:
                return result
        return None

    def health(self) -> list[SourceHealth]:
        """Return every provider's health, in priority order."""
        now = self._clock()
        states = sorted(self._states.values(), key=lambda s: s.priority)
        return [state.health(now) for state in states]

    def any_succeeded_within(self, seconds: float) -> bool:
        """Return whether some provider of this pool succeeded in the last `seconds`."""
        now = self._clock()
        return any(state.succeeded_within(now, seconds) for state in self._states.values())

    async def _fetch(self, provider: Provider[T]) -> FetchResult[T] | None:
        state = self._states[provider.name]
        now = self._clock()
        skip_reason = state.gate(now)
        if skip_reason is not None:
            logger.debug("- %s skipped: %s", provider.name, skip_reason)
            return None
        http = UpstreamHttp(
            self._client,
            timeout_s=provider.timeout_s,
            max_bytes=provider.max_bytes,
            user_agent=self._user_agent,
        )
        started = time.perf_counter()
        try:
            # The total budget covers every request of the fetch and a body that trickles in
            # slowly forever, which httpx's per-read timeout alone would not stop.
            async with asyncio.timeout(provider.timeout_s):
                records = await provider.fetch(http)
        except asyncio.CancelledError:
            state.breaker.release_probe()
            raise
        except TimeoutError as exc:
            error: BaseException = UpstreamTimeout(f"no complete answer within {provider.timeout_s:g} s")
            error.__cause__ = exc
            self._fail(provider, state, error, started)
            return None
        except SourceError as exc:
            self._fail(provider, state, exc, started)
            return None
        except Exception as exc:
            # A bug in a parser must not stop the poller; log the traceback once, count it.
            logger.exception("! %s crashed while fetching", provider.name)
            self._fail(provider, state, exc, started, log=False)
            return None
        latency_ms = (time.perf_counter() - started) * 1000.0
        rejects = list(provider.last_rejects)
        if rejects:
            # The same bad item in every poll of a feed would flood the log: warn when it changes.
            level = logging.DEBUG if rejects == state.last_rejects else logging.WARNING
            sample = "; ".join(rejects[:5])
            logger.log(level, "! %s skipped %d bad items: %s", provider.name, len(rejects), sample)
        state.record_success(self._clock(), latency_ms, rejects)
        logger.debug("< %s %d records in %.0f ms", provider.name, len(records), latency_ms)
        return FetchResult(provider.name, records, latency_ms, utc_now())

    def _fail(
        self,
        provider: Provider[T],
        state: ProviderState,
        error: BaseException,
        started: float,
        *,
        log: bool = True,
    ) -> None:
        now = self._clock()
        latency_ms = (time.perf_counter() - started) * 1000.0
        state.record_failure(now, error, latency_ms)
        if isinstance(error, UpstreamBlocked):
            # A legal block: retrying on the ladder cannot help, so the breaker opens now for
            # hours; the other providers of this round are already in flight (no lost tick).
            state.record_blocked(now, error, provider.blocked_fix())
            logger.warning(
                "! %s blocked here: %s; re-check in %.0f s",
                provider.name,
                state.blocked_reason,
                state.blocked_recheck_s,
            )
            return
        if isinstance(error, UpstreamRateLimited):
            # Without a Retry-After, wait at least one budget interval before asking again.
            wait = error.retry_after if error.retry_after is not None else max(provider.min_interval_s, 30.0)
            state.hold(now, wait)
        if log:
            logger.warning(
                "! %s failed (%s): %s [breaker %s, %d consecutive]",
                provider.name,
                type(error).__name__,
                error,
                state.breaker.state,
                state.breaker.consecutive_failures,
            )

    def _new_breaker(self) -> CircuitBreaker:
        return CircuitBreaker(
            failure_threshold=self._failure_threshold,
            base_backoff_s=self._base_backoff_s,
            max_backoff_s=self._max_backoff_s,
        )

    def _new_state(self, provider: Provider[T]) -> ProviderState:
        interval = provider.min_interval_s * self._budget_scale
        stale_after = 3.0 * max(interval, self._poll_interval_s) + provider.timeout_s
        return ProviderState(
            provider.name,
            self.category,
            provider.priority,
            bucket=TokenBucket(interval),
            breaker=self._new_breaker(),
            stale_after_s=stale_after,
            unavailable_reason=provider.unavailable_reason,
            blocked_recheck_s=self._blocked_recheck_s,
        )
