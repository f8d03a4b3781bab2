"""Formatting helpers shared by the UI views: escaping, numbers, ages and badges (pure functions)."""

from __future__ import annotations

import html
import math
from datetime import datetime

from core.clock import parse_utc, utc_now

__all__ = ["age_of", "badge", "esc", "fmt_age", "fmt_big", "fmt_ms", "fmt_pct", "fmt_price", "signed_class"]

DASH = "—"


def esc(value: object) -> str:
    """Escape any value for HTML text or attribute content ("—" for None)."""
    return DASH if value is None else html.escape(str(value), quote=True)


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def fmt_price(value: float | None) -> str:
    """Format a USD price with precision that suits its size: $90,123.45, $0.1496, $0.00000851."""
    if not _finite(value):
        return DASH
    assert value is not None
    if value >= 1000:
        return f"${value:,.2f}"
    if value >= 1:
        return f"${value:,.4f}"
    if value == 0:
        return "$0"
    digits = max(4, -int(math.floor(math.log10(abs(value)))) + 3)
    return f"${value:.{min(digits, 12)}f}"


def fmt_big(value: float | None) -> str:
    """Format a large USD amount as $1.80T, $40.31B, $601.3M."""
    if not _finite(value):
        return DASH
    assert value is not None
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"${value / limit:,.2f}{suffix}"
    return f"${value:,.0f}"


def fmt_pct(value: float | None, digits: int = 2) -> str:
    """Format a percentage change with its sign: +2.50%, -1.20%."""
    if not _finite(value):
        return DASH
    return f"{value:+.{digits}f}%"


def signed_class(value: float | None) -> str:
    """Return the CSS class of a signed change: up, down or flat."""
    if not _finite(value) or value == 0:
        return "flat"
    assert value is not None
    return "up" if value > 0 else "down"


def fmt_ms(value: float | None) -> str:
    """Format a latency in milliseconds."""
    if not _finite(value):
        return DASH
    assert value is not None
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def age_of(timestamp: str | None, now: datetime | None = None) -> float | None:
    """Return the seconds elapsed since a wire timestamp (None when absent or unreadable)."""
    if not timestamp:
        return None
    try:
        moment = parse_utc(timestamp)
    except ValueError:
        return None
    return max(0.0, ((now or utc_now()) - moment).total_seconds())


def fmt_age(seconds: float | None) -> str:
    """Format an age: 0.4s, 12s, 3m 05s, 2h 10m, 3d 4h."""
    if seconds is None:
        return DASH
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def badge(text: object, kind: str) -> str:
    """Return a coloured pill; `kind` is one of good, bad, warn, info, muted."""
    return f'<span class="hub-badge hub-{esc(kind)}">{esc(text)}</span>'
