"""Reservations for gangs: several nodes held together for a gang that fits nowhere whole.

A gang starts only when all its pods can, so its reservation is the set of nodes where
its pods are predicted to start earliest, one pod per node, held from the latest of
those starts (the gang's predicted start) for the gang's predicted duration on the
slowest of them. Other pods backfill around every node of it as around a single pod's
reservation. It sticks across passes like a single pod's: it moves only when another set
of nodes is predicted to start the gang at least ``switch_margin_s`` earlier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid_policy.framework.snapshot import BoolArray, FloatArray
from hybrid_policy.prediction.model import PredictionSource

GangKey = tuple[str, str]


@dataclass(slots=True)
class GangHeld:
    """A gang's reservation kept across passes: its nodes and predicted start."""

    key: GangKey
    nodes: tuple[str, ...]
    predicted_start_s: float
    made_at_s: float


@dataclass(frozen=True, slots=True)
class GangPlan:
    """Where and when a gang is predicted to start: node rows (one pod each), the start,
    and the least reliable source among the predicted ends it waits for."""

    rows: tuple[int, ...]
    start_s: float
    source: PredictionSource | None


def plan_gang(
    starts: FloatArray,
    sources: list[PredictionSource | None],
    members: int,
    kept: tuple[int, ...] | None,
    switch_margin_s: float,
) -> GangPlan | None:
    """The ``members`` rows with the earliest predicted starts (``starts`` per row, inf
    where never), or the ``kept`` rows of an earlier reservation unless the new ones start
    the gang at least ``switch_margin_s`` earlier; None when fewer rows can ever start."""
    finite: BoolArray = np.isfinite(starts)
    if int(finite.sum()) < members:
        return None
    order = np.lexsort((np.arange(len(starts)), starts))[:members]
    best = tuple(sorted(int(r) for r in order))
    start = float(starts[list(best)].max())
    if kept is not None and len(kept) == members and all(np.isfinite(starts[list(kept)])):
        kept_start = float(starts[list(kept)].max())
        if kept_start <= start + switch_margin_s:
            best, start = kept, kept_start
    order_of = list(PredictionSource)
    known = [source for r in best if (source := sources[r]) is not None]
    worst = max(known, key=order_of.index) if known else None
    return GangPlan(best, start, worst)
