"""Social posts: Reddit listings (keyless JSON) and Twitter/X recent search (bearer token only).

Reddit: `/r/{sub}/new.json` returns a `Listing` whose `children[].data` are posts.
Docs: https://www.reddit.com/dev/api#GET_new ; unauthenticated clients get ~10 requests a
minute and must send a descriptive User-Agent.
Twitter: `/2/tweets/search/recent`, https://docs.x.com/x-api/posts/recent-search ; without
TWITTER_BEARER_TOKEN the provider is inactive with that reason.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from typing import Any, Unpack

from core.records import SocialPost

from .errors import UpstreamGarbage
from .http import UpstreamHttp
from .parsing import (
    ItemRejected,
    collect_records,
    load_json_object,
    optional_text,
    parse_epoch,
    parse_timestamp,
    require_list,
    require_mapping,
    require_object,
    require_text,
)
from .pool import Provider, ProviderOptions, ProviderSpec, section_default
from .symbols import ASSETS, SYMBOLS, asset_for

__all__ = [
    "RedditProvider",
    "TwitterProvider",
    "count_mentions",
    "parse_reddit_listing",
    "parse_twitter_search",
    "symbols_mentioned",
]


MAX_POST_CHARS = 2000


def parse_reddit_listing(raw: bytes, *, rejects: list[str] | None = None) -> list[SocialPost]:
    """Parse a subreddit listing (`new.json`) into posts.

    Raises:
        UpstreamGarbage: not a `Listing`, or no usable post in it.
    """
    body = load_json_object(raw, "reddit", "listing")
    if body.get("kind") != "Listing":
        raise UpstreamGarbage(f"reddit: expected kind 'Listing', got {body.get('kind')!r}")
    data = require_mapping(body.get("data"), "reddit", "listing `data`")
    children = require_list(data.get("children"), "reddit", "`data.children`")
    if not children:
        raise UpstreamGarbage("reddit: listing has no posts (expected at least one)")
    return collect_records(children, _reddit_post, name="reddit", label=_reddit_label, rejects=rejects, noun="posts")


def _reddit_label(child: Any) -> object:
    return child.get("data", {}).get("id", "?") if isinstance(child, dict) else "?"


def _reddit_post(child: Any) -> SocialPost:
    if not isinstance(child, dict) or not isinstance(child.get("data"), dict):
        raise ItemRejected("child has no `data` object")
    post = child["data"]
    title = require_text(post.get("title"), "title")
    body = post.get("selftext") if isinstance(post.get("selftext"), str) else ""
    if body in ("[removed]", "[deleted]"):
        body = ""
    text = f"{title}\n\n{body}".strip() if body else title
    permalink = post.get("permalink")
    return SocialPost(
        platform="reddit",
        post_id=require_text(post.get("id"), "id"),
        text=text[:MAX_POST_CHARS],
        created_at=parse_epoch(post.get("created_utc"), "created_utc"),
        community=optional_text(post.get("subreddit")),
        url=f"https://www.reddit.com{permalink}"
        if isinstance(permalink, str) and permalink.startswith("/")
        else None,
    )


def parse_twitter_search(raw: bytes, *, rejects: list[str] | None = None) -> list[SocialPost]:
    """Parse a `/2/tweets/search/recent` body into posts.

    Raises:
        UpstreamGarbage: not the documented shape, or no usable tweet (also when the API put
            its complaint in `errors` instead of `data`).
    """
    body = load_json_object(raw, "twitter", "search response")
    if "data" not in body:
        errors = body.get("errors") or body.get("detail") or "no `data` (result_count 0)"
        raise UpstreamGarbage(f"twitter: expected `data`, got {errors}")
    tweets = require_list(body.get("data"), "twitter", "`data`")
    return collect_records(tweets, _tweet_post, name="twitter", label="id", rejects=rejects, noun="tweets")


def _tweet_post(tweet: Any) -> SocialPost:
    tweet = require_object(tweet, "tweet")
    tweet_id = require_text(tweet.get("id"), "id")
    return SocialPost(
        platform="twitter",
        post_id=tweet_id,
        text=require_text(tweet.get("text"), "text")[:MAX_POST_CHARS],
        created_at=parse_timestamp(tweet.get("created_at"), "created_at"),
        url=f"https://x.com/i/web/status/{tweet_id}",
    )


def _mention_patterns(symbols: Iterable[str]) -> dict[str, re.Pattern[str]]:
    assets = [asset_for(symbol) for symbol in symbols]
    all_words = [word for asset in ASSETS for word in (asset.name.lower(), *asset.keywords)]
    patterns: dict[str, re.Pattern[str]] = {}
    for asset in assets:
        alternatives = []
        for word in (asset.name.lower(), *asset.keywords):
            # "bitcoin" must not fire inside "bitcoin cash": exclude longer names it starts.
            longer = [other[len(word) :] for other in all_words if other.startswith(word + " ")]
            guard = "".join(f"(?!{re.escape(rest)}\\b)" for rest in longer)
            alternatives.append(f"{re.escape(word)}\\b{guard}")
        # Tickers must be upper case ("SOL", or "$sol") so "link", "dot" or "ton" in plain
        # English do not count; names and keywords match in any case.
        ticker = re.escape(asset.symbol)
        patterns[asset.symbol] = re.compile(
            rf"(?<![\w$])(?:\$(?i:{ticker})|{ticker})(?!\w)|(?i:\b(?:{'|'.join(alternatives)}))"
        )
    return patterns


_DEFAULT_PATTERNS = _mention_patterns(SYMBOLS)


def symbols_mentioned(text: str, symbols: Iterable[str] = SYMBOLS) -> set[str]:
    """Return the tracked symbols a text mentions (ticker in capitals or $ticker, or the name)."""
    symbols = tuple(symbols)
    patterns = _DEFAULT_PATTERNS if symbols == SYMBOLS else _mention_patterns(symbols)
    return {symbol for symbol, pattern in patterns.items() if pattern.search(text)}


def count_mentions(posts: Sequence[SocialPost], symbols: Iterable[str] = SYMBOLS) -> dict[str, int]:
    """Count, per symbol, how many posts mention it (a post counts once per symbol)."""
    symbols = tuple(symbols)
    counts = dict.fromkeys(symbols, 0)
    for post in posts:
        for symbol in symbols_mentioned(post.text, symbols):
            counts[symbol] += 1
    return counts


class RedditProvider(Provider[SocialPost]):
    """Newest posts of a few subreddits.

    Two requests per fetch against ~10 a minute allowed: a 120 s budget is gentle.

    Args:
        subreddits: communities to read; default the `REDDIT_SUBREDDITS` default.
        limit: posts per subreddit per call (Reddit caps at 100).
    """

    spec = ProviderSpec("reddit", "social", 1, timeout_s=12.0, min_interval_s=120.0,
                        url_setting="reddit_url")

    def __init__(
        self, *, subreddits: Sequence[str] | None = None, limit: int = 50, **options: Unpack[ProviderOptions]
    ) -> None:
        self.subreddits: tuple[str, ...] = (
            tuple(subreddits) if subreddits is not None else section_default("reddit_subreddits")
        )
        if not self.subreddits:
            raise ValueError("subreddits must name at least one community")
        super().__init__(**options)
        self.limit = min(max(limit, 1), 100)

    async def fetch(self, http: UpstreamHttp) -> list[SocialPost]:
        self.last_rejects = []
        outcomes = await asyncio.gather(
            *(self._fetch_subreddit(http, sub) for sub in self.subreddits), return_exceptions=True
        )
        posts: list[SocialPost] = []
        for outcome in outcomes:
            # Both subreddits share one host and one rate limit: a failure of either means the
            # source is not healthy, so fail the fetch rather than hide it in a partial result.
            if isinstance(outcome, BaseException):
                raise outcome
            posts.extend(outcome)
        return posts

    async def _fetch_subreddit(self, http: UpstreamHttp, subreddit: str) -> list[SocialPost]:
        reply = await http.get(
            f"{self.base_url}/r/{subreddit}/new.json", params={"limit": str(self.limit), "raw_json": "1"}
        )
        return parse_reddit_listing(reply.body, rejects=self.last_rejects)


class TwitterProvider(Provider[SocialPost]):
    """Recent English tweets about crypto; inactive without a bearer token with search access.

    Low-tier plans allow a handful of searches per 15 minutes, hence the 900 s budget.

    Args:
        query: the search query.
        max_results: tweets per call (the API allows 10-100).
    """

    spec = ProviderSpec("twitter", "social", 2, timeout_s=10.0, min_interval_s=900.0,
                        url_setting="twitter_url", secret_setting="twitter_bearer_token")

    def __init__(
        self,
        *,
        query: str = "(bitcoin OR ethereum OR crypto OR $BTC OR $ETH) lang:en -is:retweet",
        max_results: int = 50,
        **options: Unpack[ProviderOptions],
    ) -> None:
        super().__init__(**options)
        self.query = query
        self.max_results = min(max(max_results, 10), 100)

    async def fetch(self, http: UpstreamHttp) -> list[SocialPost]:
        params = {"query": self.query, "max_results": str(self.max_results), "tweet.fields": "created_at"}
        headers = {"Authorization": f"Bearer {self._secret}"}
        reply = await http.get(f"{self.base_url}/tweets/search/recent", params=params, headers=headers)
        return parse_twitter_search(reply.body, rejects=self.fresh_rejects())
