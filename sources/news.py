"""Keyed news APIs: CryptoPanic (CRYPTOPANIC_TOKEN) and CryptoCompare (CRYPTOCOMPARE_KEY).

Both run only when their key is set; without it they stay in the pool as `inactive` with the
reason, so monitoring shows why they are silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.records import NewsItem

from .errors import SourceUnavailable, UpstreamRateLimited
from .http import UpstreamHttp
from .parsing import (
    collect_records,
    load_json_object,
    optional_text,
    parse_epoch,
    parse_timestamp,
    require_http_url,
    require_list,
    require_object,
    require_text,
)
from .pool import Provider, ProviderSpec
from .rss import strip_html

__all__ = [
    "CryptoCompareNewsProvider",
    "CryptoPanicProvider",
    "parse_cryptocompare_news",
    "parse_cryptopanic_posts",
]



def _news_item(
    item: dict[str, Any], *, url: Any, description: str, source: str, published_at: datetime, image_url: str | None
) -> NewsItem:
    """One article of a news API: the title without HTML, the link an http(s) URL."""
    return NewsItem(
        title=strip_html(require_text(item.get("title"), "title")),
        description=description,
        url=require_http_url(url, "url"),
        source=source,
        published_at=published_at,
        image_url=image_url,
    )


def parse_cryptopanic_posts(raw: bytes, *, rejects: list[str] | None = None) -> list[NewsItem]:
    """Parse a CryptoPanic `/posts/` page into news items.

    Raises:
        UpstreamGarbage: not `{"results": [...]}`, or no usable post.
        SourceUnavailable: CryptoPanic reported an error (bad token, plan limits).
    """
    body = load_json_object(raw, "cryptopanic", "posts response")
    if "results" not in body and ("status" in body or "info" in body):
        raise SourceUnavailable(f"cryptopanic: upstream reported {body.get('info') or body.get('status')}")
    results = require_list(body.get("results"), "cryptopanic", "`results`")
    return collect_records(results, _cryptopanic_item, name="cryptopanic", label="id", rejects=rejects, noun="posts")


def _cryptopanic_item(post: Any) -> NewsItem:
    post = require_object(post, "post")
    source = post.get("source")
    return _news_item(
        post,
        # `original_url` (the publisher's page) only comes with some plans; `url` is CryptoPanic's.
        url=post.get("original_url") or post.get("url"),
        description=strip_html(post.get("description") or ""),
        source=optional_text(source.get("title") if isinstance(source, dict) else None) or "CryptoPanic",
        published_at=parse_timestamp(post.get("published_at"), "published_at"),
        image_url=post.get("image") if isinstance(post.get("image"), str) else None,
    )


def _raise_reported_error(body: Mapping[str, Any]) -> None:
    # CryptoCompare answers errors, rate limiting included, with HTTP 200 and `"Response": "Error"`.
    if body.get("Response") != "Error":
        return
    message = str(body.get("Message", "no message"))
    if "rate limit" in message.lower():
        raise UpstreamRateLimited(None)
    raise SourceUnavailable(f"cryptocompare: upstream reported {message}")


def parse_cryptocompare_news(raw: bytes, *, rejects: list[str] | None = None) -> list[NewsItem]:
    """Parse a CryptoCompare `/data/v2/news/` body into news items.

    Raises:
        UpstreamRateLimited: the in-body "rate limit" error (CryptoCompare answers 200).
        SourceUnavailable: any other `"Response": "Error"`.
        UpstreamGarbage: not the documented shape, or no usable article.
    """
    body = load_json_object(raw, "cryptocompare", "news response")
    _raise_reported_error(body)
    articles = require_list(body.get("Data"), "cryptocompare", "`Data`")
    return collect_records(
        articles, _cryptocompare_item, name="cryptocompare", label="id", rejects=rejects, noun="articles"
    )


def _cryptocompare_item(article: Any) -> NewsItem:
    article = require_object(article, "article")
    info = article.get("source_info")
    image = article.get("imageurl")
    return _news_item(
        article,
        url=article.get("url"),
        description=strip_html(article.get("body") or "")[:1000],
        source=optional_text(info.get("name") if isinstance(info, dict) else None)
        or str(article.get("source") or "CryptoCompare"),
        published_at=parse_epoch(article.get("published_on"), "published_on"),
        image_url=image if isinstance(image, str) and image.startswith(("http://", "https://")) else None,
    )


class CryptoPanicProvider(Provider[NewsItem]):
    """CryptoPanic public posts (news only); inactive without a token.

    The free developer plan allows very few calls; 10 minutes between them is safe.
    """

    spec = ProviderSpec("cryptopanic", "news", 10, timeout_s=10.0, min_interval_s=600.0,
                        url_setting="cryptopanic_url", secret_setting="cryptopanic_token")

    async def fetch(self, http: UpstreamHttp) -> list[NewsItem]:
        params = {"auth_token": self._secret, "public": "true", "kind": "news"}
        reply = await http.get(f"{self.base_url}/posts/", params=params)
        return parse_cryptopanic_posts(reply.body, rejects=self.fresh_rejects())


class CryptoCompareNewsProvider(Provider[NewsItem]):
    """CryptoCompare's news feed (English); inactive without an API key."""

    spec = ProviderSpec("cryptocompare", "news", 11, timeout_s=10.0, min_interval_s=180.0,
                        url_setting="cryptocompare_url", secret_setting="cryptocompare_key")

    async def fetch(self, http: UpstreamHttp) -> list[NewsItem]:
        headers = {"Authorization": f"Apikey {self._secret}"}
        reply = await http.get(f"{self.base_url}/data/v2/news/", params={"lang": "EN"}, headers=headers)
        return parse_cryptocompare_news(reply.body, rejects=self.fresh_rejects())
