"""Fair-share figures: weighted max-min entitlements and Jain's index.

A namespace's entitlement in a window is its weighted max-min fair share of the cluster's
GPU-time, capped by what it asked for (GPU-time of its running and waiting jobs). Its
normalised share is what it got divided by that entitlement; Jain's index over those
shares is 1 when every namespace got the same fraction of its entitlement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hybrid_policy.framework.snapshot import FloatArray

_EPS = 1e-9


def water_fill(demand: FloatArray, weights: FloatArray, capacity: float) -> FloatArray:
    """Weighted max-min fair allocation of ``capacity`` capped by ``demand``."""
    alloc = np.zeros_like(demand)
    active = demand > _EPS
    left = min(capacity, float(demand.sum()))
    while left > _EPS and active.any():
        w = weights[active]
        level = left / w.sum()
        room = (demand[active] - alloc[active]) / w
        step = min(level, float(room.min()))
        alloc[active] += step * w
        left -= step * float(w.sum())
        active &= demand - alloc > _EPS
    return alloc


def jain_index(values: Sequence[float] | FloatArray) -> float:
    """Jain's fairness index: ``(sum x)^2 / (n * sum x^2)``; 1 for equal values."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or float((x * x).sum()) == 0.0:
        return 1.0
    return float(x.sum() ** 2 / (x.size * (x * x).sum()))


def window_fairness(
    allocated: FloatArray, demand: FloatArray, weights: FloatArray, capacity_per_window: float
) -> tuple[float, FloatArray]:
    """Mean Jain's index over windows with two or more namespaces asking, and the
    per-namespace share (allocated over entitlement) over all windows together."""
    entitled_total = np.zeros(allocated.shape[1])
    indices = []
    for w in range(allocated.shape[0]):
        entitled = water_fill(demand[w], weights, capacity_per_window)
        entitled_total += entitled
        asking = entitled > _EPS
        if asking.sum() >= 2:
            indices.append(jain_index(allocated[w, asking] / entitled[asking]))
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(entitled_total > _EPS, allocated.sum(axis=0) / entitled_total, np.nan)
    return (float(np.mean(indices)) if indices else 1.0), shares
