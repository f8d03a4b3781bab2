"""Errors raised by the data-source layer.

    SourceError
     ├── UpstreamGarbage            the body is not what the provider documents (bad JSON, HTML,
     │                              wrong shape, no usable record)
     ├── SourceUnavailable          no usable response at all
     │    ├── UpstreamTimeout       connect/read/total time ran out
     │    ├── UpstreamConnectionError   refused, reset, DNS, TLS
     │    ├── ResponseTooLarge      the body passed the provider's size cap
     │    └── UpstreamHTTPError     a non-2xx status
     │         ├── UpstreamRateLimited   429 (carries Retry-After)
     │         └── UpstreamBlocked       451, or 403 with a geo-block body: not served from here
     └── MissingCredentials         the provider needs a key that is not configured

Third-party exceptions (httpx, json, websockets) are translated into this tree at the boundary
(`sources/http.py`, the parsers) and chained with `from exc`.
"""

from __future__ import annotations

__all__ = [
    "MissingCredentials",
    "ResponseTooLarge",
    "SourceError",
    "SourceUnavailable",
    "UpstreamBlocked",
    "UpstreamConnectionError",
    "UpstreamGarbage",
    "UpstreamHTTPError",
    "UpstreamRateLimited",
    "UpstreamTimeout",
]


class SourceError(Exception):
    """Base class of every error in `sources`."""


class UpstreamGarbage(SourceError):
    """The upstream answered, but the body cannot be turned into records."""


class SourceUnavailable(SourceError):
    """The upstream could not be reached or did not answer usefully."""


class UpstreamTimeout(SourceUnavailable):
    """The request took longer than the provider's timeout."""


class UpstreamConnectionError(SourceUnavailable):
    """The connection failed (refused, reset, closed before a response)."""


class ResponseTooLarge(SourceUnavailable):
    """The body grew past the provider's size cap and was cut off."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body exceeded {limit} bytes; cut off (raise max_bytes if legitimate)")
        self.limit = limit


class UpstreamHTTPError(SourceUnavailable):
    """The upstream answered with a non-2xx status."""

    def __init__(self, status: int, detail: str = "") -> None:
        message = f"HTTP {status}"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)
        self.status = status


class UpstreamRateLimited(UpstreamHTTPError):
    """HTTP 429; `retry_after` is the number of seconds the upstream asked us to wait, if it said."""

    def __init__(self, retry_after: float | None) -> None:
        hint = f"retry after {retry_after:g} s" if retry_after is not None else "no Retry-After given"
        super().__init__(429, f"rate limited, {hint}")
        self.retry_after = retry_after


class UpstreamBlocked(UpstreamHTTPError):
    """The upstream refuses this machine's location: HTTP 451, or a 403 whose body says so.

    A legal block, not a transient fault: retrying soon cannot help, a different endpoint (or
    host region) can. `host` names who refused; `phrase` is the status in words.
    """

    def __init__(self, status: int, host: str, detail: str = "") -> None:
        self.host = host
        self.phrase = "Unavailable For Legal Reasons" if status == 451 else "Forbidden (geo-blocked)"
        summary = f"{self.phrase} from {host}"
        super().__init__(status, f"{summary}: {detail}" if detail else summary)
        # The short form the health reason shows; `str(error)` keeps the upstream's own words too.
        self.summary = f"HTTP {status} {summary}"


class MissingCredentials(SourceError):
    """The provider needs an API key or token that is not set in the environment."""
