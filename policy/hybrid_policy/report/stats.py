"""Spread over seeds: mean and the half-width of a 95 % Student-t interval."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, half_width)``; the half-width is 0 for a single value, NaN-free input only."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    n = len(finite)
    mean = math.fsum(finite) / n
    if n == 1:
        return mean, 0.0
    var = math.fsum((v - mean) ** 2 for v in finite) / (n - 1)
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return mean, t * math.sqrt(var / n)
