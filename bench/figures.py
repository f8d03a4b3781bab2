"""The statistics every benchmark reports its samples with."""

from __future__ import annotations

import math
from collections.abc import Iterable

from core.quantiles import nearest_rank

__all__ = ["percentile"]


def percentile(values: Iterable[float], q: float, *, scale: float = 1.0, digits: int = 2) -> float | None:
    """Return the nearest-rank `q` quantile of `values` (0 < q <= 1) times `scale`, rounded to `digits`.

    Nearest rank: the smallest sample with at least a share `q` of the samples at or below it, so p100
    is the maximum. None when there are no samples, or when the rank falls on an infinite one
    (bench.ws_fanout counts a lost delivery as `inf`: a percentile among the lost is unknown, not large).
    """
    ordered = sorted(values)
    if not ordered:
        return None
    value = nearest_rank(ordered, q)
    return None if math.isinf(value) else round(value * scale, digits)
