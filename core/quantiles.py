"""Nearest-rank quantiles: the one rule the models' statistics and the benchmarks report latencies with."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["nearest_rank"]


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """Return the smallest of the sorted, non-empty `ordered` with at least a share `q` (0 < q <= 1) at or
    below it, so q = 1 is the maximum and no value is ever interpolated."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
