"""The one place that talks HTTP to upstreams: timeouts, a body size cap, error translation.

Every provider fetch goes through `UpstreamHttp.get`, so every provider gets the same guarantees:
a hung server costs at most `timeout_s`, a huge or never-ending body is cut off at `max_bytes`,
and every httpx exception comes out as one of ours (`sources.errors`).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from core.clock import utc_now

from .errors import (
    ResponseTooLarge,
    UpstreamConnectionError,
    UpstreamHTTPError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from .geoblock import blocked_error, is_geo_block

__all__ = ["DEFAULT_USER_AGENT", "HttpReply", "UpstreamHttp", "parse_retry_after"]

logger = logging.getLogger(__name__)

# Reddit and some CDNs reject the default python-httpx agent; a descriptive agent is what their
# API rules ask for.
DEFAULT_USER_AGENT = "crypto-market-hub/0.1 (+https://huggingface.co/spaces; live market dashboard)"

# The longest Retry-After we honour; a misconfigured upstream saying "one week" should not
# silence a provider for a week.
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class HttpReply:
    """A complete response: status, headers (lower-case names) and the body bytes."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a `Retry-After` header asks for (delta-seconds or HTTP-date), capped."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = (moment - utc_now()).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class UpstreamHttp:
    """GET with a size cap and translated errors, over a shared `httpx.AsyncClient`.

    Args:
        client: the shared client (connection pool); this object never closes it.
        timeout_s: connect/read/write/pool timeout for one request.
        max_bytes: the body is streamed and cut off past this size (`ResponseTooLarge`).
        user_agent: sent unless the caller's headers name one.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout_s: float,
        max_bytes: int,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes!r}")
        self._client = client
        self._timeout = httpx.Timeout(timeout_s)
        self._max_bytes = max_bytes
        self._user_agent = user_agent

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """GET `url`; return the reply for 2xx and 304, raise for everything else.

        Raises:
            UpstreamTimeout, UpstreamConnectionError, ResponseTooLarge, UpstreamRateLimited (429),
            UpstreamBlocked (451, or 403 naming a location rule), UpstreamHTTPError (other non-2xx).
        """
        request_headers = {"User-Agent": self._user_agent, "Accept-Encoding": "gzip, deflate"}
        request_headers.update(headers or {})
        try:
            async with self._client.stream(
                "GET", url, params=params, headers=request_headers, timeout=self._timeout
            ) as response:
                reply_headers = {name.lower(): value for name, value in response.headers.items()}
                if response.status_code == 429:
                    raise UpstreamRateLimited(parse_retry_after(reply_headers.get("retry-after")))
                if response.status_code == 304:
                    return HttpReply(304, b"", reply_headers)
                if not 200 <= response.status_code < 300:
                    text = _printable(await self._read_capped(response, limit=300, strict=False))
                    if is_geo_block(response.status_code, text):
                        raise blocked_error(response.status_code, str(response.request.url), text)
                    raise UpstreamHTTPError(response.status_code, text)
                body = await self._read_capped(response, limit=self._max_bytes, strict=True)
                return HttpReply(response.status_code, body, reply_headers)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{type(exc).__name__} after {self._timeout.read}s on {url}") from exc
        except httpx.DecodingError as exc:
            raise UpstreamConnectionError(f"undecodable content-encoding from {url}: {exc}") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # Transport errors, too many redirects, unsupported schemes: no usable answer.
            raise UpstreamConnectionError(f"{type(exc).__name__} on {url}: {exc or 'no detail'}") from exc

    async def _read_capped(self, response: httpx.Response, *, limit: int, strict: bool) -> bytes:
        # Content-Length is a promise, not a guarantee: check it early to save the transfer, and
        # still count the bytes as they arrive (chunked bodies have no length at all).
        declared = response.headers.get("content-length")
        if strict and declared is not None and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                if strict:
                    raise ResponseTooLarge(limit)
                chunks.append(chunk[: limit - (size - len(chunk))])
                break
            chunks.append(chunk)
            # Yield between chunks so a fast endless stream cannot starve the loop.
            await asyncio.sleep(0)
        return b"".join(chunks)


def _printable(snippet: bytes) -> str:
    text = snippet.decode("utf-8", errors="replace")
    return " ".join(text.split())[:200]
