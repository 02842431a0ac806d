"""The compiled loop behind kube-scheduler's resource-allocation scores (numba).

:class:`hybrid_policy.plugins.scores.MostAllocated` and ``LeastAllocated`` score a pod on
its candidates with :func:`weighted_scores` when their resource weights are whole
numbers (all of this project's are). Per resource the used (or free) share is
``floor(counted * 100 / allocatable)``, a whole number, so with whole weights every sum
is exact in any order and the floor of the weighted mean is the same number as numpy's
array expression gives (``tests/unit/test_scores.py`` checks both against each other).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from hybrid_policy.compiled import compiled

_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]


def _weighted_scores(
    out: _F64,
    candidates: _I64,
    cols: _I64,
    need: _F64,
    requested: _F64,
    allocatable: _F64,
    weights: _F64,
    weight_sum: float,
    free: bool,
) -> None:
    """Write each candidate's score into ``out``: per resource column ``cols[k]``, the
    pod's ``need[k]`` added to what is requested there; 0 for a resource without room."""
    for i in range(candidates.size):
        node = candidates[i]
        total = 0.0
        for k in range(cols.size):
            alloc = allocatable[node, cols[k]]
            used = requested[node, cols[k]] + need[k]
            if alloc > 0.0 and used <= alloc:
                counted = alloc - used if free else used
                total += math.floor(counted * 100.0 / alloc) * weights[k]
        out[i] = math.floor(total / weight_sum)


#: :func:`_weighted_scores` compiled (:mod:`hybrid_policy.compiled`).
weighted_scores = compiled(_weighted_scores)
