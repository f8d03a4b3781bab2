"""bench/figures.py: the one percentile every benchmark reports with."""

from __future__ import annotations

import math

from bench.figures import percentile


def test_percentile_is_the_nearest_rank():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 9.0, 8.0, 7.0, 6.0]
    assert percentile(values, 0.5) == 5.0
    assert percentile(values, 0.99) == percentile(values, 1.0) == 10.0
    assert percentile(values, 0.01) == 1.0
    assert percentile([0.0123456], 0.5, scale=1000, digits=1) == 12.3


def test_percentile_of_nothing_or_among_the_lost_is_unknown():
    assert percentile([], 0.5) is None
    assert percentile([1.0, math.inf, math.inf], 0.5) is None
    assert percentile([1.0, 2.0, math.inf], 0.5) == 2.0
