"""The compiled loop that writes the learned scorer's feature rows (numba).

:func:`hybrid_policy.features.pair_features` gathers what a pod's rows need and calls
:func:`fill_rows`, which writes every column of every candidate's row in one pass over
the candidates, instead of some forty numpy operations of a few microseconds each. Each
feature is one IEEE division, subtraction, minimum or comparison of float64 values, then
one cast to float32, so the rows are bit for bit those of the array operations they
replace (``tests/unit/test_features_reference.py`` checks it against a plain reference).
The column positions are those of :data:`hybrid_policy.features.FEATURE_NAMES`, which
checks them when it is imported.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from hybrid_policy.compiled import compiled

#: First column of each feature group, in :data:`hybrid_policy.features.FEATURE_NAMES`.
POD, CAPACITY, UTILISATION, PERFORMANCE, FRAGMENTATION, GLOBAL = 0, 9, 16, 21, 24, 28
#: Columns in all.
COLUMNS = 37
#: The scales of :mod:`hybrid_policy.features` (checked there too).
GPU_SCALE = 8.0
STALE_AFTER_S = 300.0
QUEUE_DEMAND_CAP = 10.0

_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]
_B = npt.NDArray[np.bool_]


def _fill_rows(
    out: npt.NDArray[np.float32],
    candidates: _I64,
    cols: _I64,
    request: _F64,
    alloc: _F64,
    has_alloc: _B,
    total: _F64,
    has_total: _B,
    perf: _F64,
    requested: _F64,
    pod_count: _I64,
    slots: _I64,
    utilisation: _F64,
    age_s: _F64,
    own: _F64,
    demand: _F64,
    log_queue: float,
    gpu_node_count: int,
) -> None:
    """Write the rows of ``candidates`` into ``out`` (candidates x :data:`COLUMNS`).

    ``alloc``, ``has_alloc`` and ``perf`` are per node (GPU, CPU, memory; and the three
    performance columns); ``requested``, ``utilisation`` and ``request`` are in the
    snapshot's resource order, read at ``cols``; ``own`` is the pod's task type and run
    time columns."""
    nodes = requested.shape[0]
    # the global context: the same on every row
    glob = np.zeros(9)
    glob[0] = log_queue
    whole_free = 0
    for row in range(nodes):
        if requested[row, cols[0]] <= 0.0 and has_alloc[row, 0]:
            whole_free += 1
    for k in range(3):
        used = 0.0
        for row in range(nodes):  # numpy's sum over rows adds them in order
            used += requested[row, cols[k]]
        if has_total[k]:
            share = demand[cols[k]] / total[k]
            glob[1 + k] = share if not share > QUEUE_DEMAND_CAP else QUEUE_DEMAND_CAP
            glob[4 + k] = used / total[k]
    glob[7] = whole_free / gpu_node_count
    glob[8] = candidates.size / max(nodes, 1)
    best = -np.inf
    for i in range(candidates.size):
        value = perf[candidates[i], 1]
        if math.isnan(value) or value > best or i == 0:
            best = value
            if math.isnan(value):
                break
    best = best if not best < 1e-9 else 1e-9
    need = np.empty(3)
    for k in range(3):
        need[k] = request[cols[k]]
    for i in range(candidates.size):
        node = candidates[i]
        row = out[i]
        any_missing = False
        gpu_free = gpu_after = gpu_kept = 0.0
        for k in range(3):
            a = alloc[node, k]
            free = a - requested[node, cols[k]]
            after = free - need[k]
            kept = after if after >= 0.0 or math.isnan(after) else 0.0  # np.maximum's rule
            if k == 0:
                gpu_free, gpu_after, gpu_kept = free, after, kept
            if has_alloc[node, k]:
                row[POD + k] = need[k] / a
                row[CAPACITY + k] = free / a
                row[CAPACITY + 3 + k] = kept / a
            else:
                row[POD + k] = 0.0
                row[CAPACITY + k] = 0.0
                row[CAPACITY + 3 + k] = 0.0
            util = utilisation[node, cols[k]]
            if math.isnan(util):
                any_missing = True
                row[UTILISATION + k] = 0.0
            else:
                row[UTILISATION + k] = util
        row[POD + 3] = need[0] / GPU_SCALE
        for k in range(5):
            row[POD + 4 + k] = own[k]
        row[CAPACITY + 6] = pod_count[node] / slots[node]
        row[UTILISATION + 3] = 1.0 if any_missing else 0.0
        age = age_s[node]
        if math.isfinite(age):
            stale = age / STALE_AFTER_S
            row[UTILISATION + 4] = stale if not stale > 1.0 else 1.0
        else:
            row[UTILISATION + 4] = 1.0
        row[PERFORMANCE] = perf[node, 0]
        row[PERFORMANCE + 1] = perf[node, 1] / best
        row[PERFORMANCE + 2] = perf[node, 2]
        gpu_alloc = alloc[node, 0]
        row[FRAGMENTATION] = 1.0 if has_alloc[node, 0] and gpu_free >= gpu_alloc else 0.0
        row[FRAGMENTATION + 1] = 1.0 if need[0] > 0.0 and gpu_after <= 0.0 else 0.0
        row[FRAGMENTATION + 2] = 1.0 if gpu_after > 0.0 and gpu_after < gpu_alloc else 0.0
        row[FRAGMENTATION + 3] = gpu_kept / GPU_SCALE
        for k in range(9):
            row[GLOBAL + k] = glob[k]


#: :func:`_fill_rows` compiled (:mod:`hybrid_policy.compiled`).
fill_rows = compiled(_fill_rows)
