"""Telling a geo-block from other failures: HTTP 451, or a 403 whose body names a location rule.

Pure; `sources/http.py` (REST) and the Binance stream's handshake both ask it. A geo-block is a
legal refusal of this machine's location, so the pool stops asking for hours instead of retrying
on the backoff ladder of a transient fault (docs/sources.md, "Failover policy").
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import UpstreamBlocked

__all__ = ["HTTP_403_FORBIDDEN", "HTTP_451_UNAVAILABLE_FOR_LEGAL_REASONS", "blocked_error", "is_geo_block"]

HTTP_403_FORBIDDEN = 403
HTTP_451_UNAVAILABLE_FOR_LEGAL_REASONS = 451

# A 403 is usually a bad key or a WAF; only these words make it a location block. Binance's 451
# body says "Service unavailable from a restricted location"; CloudFront's country block says
# "configured to block access from your country".
_LOCATION_WORDS = re.compile(
    r"restricted (location|jurisdiction|region|country)"
    r"|from your (country|region|location)"
    r"|(in|for) your (country|region|location)"
    r"|geo-?(block|restrict)",
    re.IGNORECASE,
)


def is_geo_block(status: int, body: str) -> bool:
    """Return whether a response with `status` and `body` refuses this machine's location."""
    if status == HTTP_451_UNAVAILABLE_FOR_LEGAL_REASONS:
        return True
    return status == HTTP_403_FORBIDDEN and _LOCATION_WORDS.search(body) is not None


def blocked_error(status: int, url: str, body: str = "") -> UpstreamBlocked:
    """Return the `UpstreamBlocked` for a geo-blocked answer from `url`, naming its host."""
    host = urlsplit(url).netloc.rpartition("@")[2] or url
    return UpstreamBlocked(status, host, " ".join(body.split())[:200])
