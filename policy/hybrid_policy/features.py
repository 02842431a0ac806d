"""Features of (pod, node) pairs for the learned scorer, numpy only.

One row per candidate node: the pod's requests relative to that node, the node's free
capacity, live utilisation and its staleness, performance, pods running, GPU
fragmentation, and a small global context (queue, cluster utilisation) repeated on every
row. The simulator and the operator both call :func:`pair_features`, so a model trained in
the simulator sees the same numbers in production. Bump :data:`FEATURE_SCHEMA_VERSION`
whenever a feature changes meaning or position: checkpoints record it and loading refuses
a mismatch.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot, IntArray
from hybrid_policy.resources import CPU, GPU, MEMORY

Float32Array = npt.NDArray[np.float32]

FEATURE_SCHEMA_VERSION = 1

#: Task types the model knows by name; any other (or none) is ``task_other``.
KNOWN_TASK_TYPES: tuple[str, ...] = ("image-classification", "nlp")
#: Metrics older than this count as fully stale.
STALE_AFTER_S = 300.0
#: Scale for GPU counts (the widest node of the training scenarios).
GPU_SCALE = 8.0
#: Scale for log1p of counts (queue length) and run times in minutes.
LOG_SCALE = 5.0

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "pod": (
        "req_gpu_over_node",
        "req_cpu_over_node",
        "req_mem_over_node",
        "req_gpus_over_8",
        "task_image_classification",
        "task_nlp",
        "task_other",
        "runtime_known",
        "log_runtime_min",
    ),
    "capacity": (
        "free_gpu",
        "free_cpu",
        "free_mem",
        "free_gpu_after",
        "free_cpu_after",
        "free_mem_after",
        "pods_running_frac",
    ),
    "utilisation": ("util_gpu", "util_cpu", "util_mem", "metrics_missing", "metrics_staleness"),
    "performance": ("performance", "performance_vs_best", "runtime_factor"),
    "fragmentation": (
        "node_gpus_all_free",
        "fills_node_gpus",
        "leaves_partial_gpus",
        "free_gpus_after_over_8",
    ),
    "global": (
        "log_queue_pods",
        "queue_gpu_demand",
        "queue_cpu_demand",
        "queue_mem_demand",
        "cluster_gpu_alloc",
        "cluster_cpu_alloc",
        "cluster_mem_alloc",
        "whole_free_gpu_nodes",
        "feasible_node_frac",
    ),
}
FEATURE_NAMES: tuple[str, ...] = tuple(n for group in FEATURE_GROUPS.values() for n in group)
FEATURE_COUNT = len(FEATURE_NAMES)


def group_columns(group: str) -> list[int]:
    """Column positions of the features of ``group`` (see :data:`FEATURE_GROUPS`)."""
    names = FEATURE_GROUPS[group]
    return [FEATURE_NAMES.index(n) for n in names]


@dataclass(frozen=True)
class _NodeTable:
    """What the features read of a snapshot's nodes that never changes during its life
    (allocatable, performance and pod slots are fixed when it is built)."""

    #: Snapshot columns of GPU, CPU and memory.
    cols: IntArray
    #: Allocatable GPU, CPU and memory per node, and where it is positive.
    alloc: npt.NDArray[np.float64]
    has_alloc: npt.NDArray[np.bool_]
    #: Their sums over the nodes, and where those are positive.
    total: npt.NDArray[np.float64]
    has_total: npt.NDArray[np.bool_]
    #: ``max(max_pods, 1)`` per node.
    slots: IntArray
    #: Nodes with GPUs (at least one counted).
    gpu_node_count: int
    #: Each node's row before the pod is known: 0 but for the ``performance`` columns
    #: (``performance / 100``, the raw performance, ``50 / max(performance, 1)``).
    rows: npt.NDArray[np.float64]


_TABLES: weakref.WeakKeyDictionary[ClusterSnapshot, _NodeTable] = weakref.WeakKeyDictionary()


def _node_table(snapshot: ClusterSnapshot) -> _NodeTable:
    """The snapshot's :class:`_NodeTable`, built once per snapshot."""
    table = _TABLES.get(snapshot)
    if table is None:
        cols = np.array([snapshot.index[r] for r in (GPU, CPU, MEMORY)], dtype=np.int64)
        alloc = snapshot.allocatable[:, cols]
        total = alloc.sum(axis=0)
        perf = snapshot.performance
        rows = np.zeros((len(snapshot), FEATURE_COUNT))
        rows[:, _PERF] = np.stack([perf / 100.0, perf, 50.0 / np.maximum(perf, 1.0)], axis=1)
        table = _NodeTable(
            cols, alloc, alloc > 0, total, total > 0, np.maximum(snapshot.max_pods, 1),
            max(int((alloc[:, 0] > 0).sum()), 1), rows,
        )  # fmt: skip
        _TABLES[snapshot] = table
    return table


def _global_context(
    snapshot: ClusterSnapshot, table: _NodeTable, feasible: int
) -> npt.NDArray[np.float64]:
    """The :data:`FEATURE_GROUPS` ``global`` columns, the same on every row."""
    cols, total = table.cols, table.total
    used = snapshot.requested.sum(axis=0).take(cols)
    demand = snapshot.queue.pending_demand
    queue = demand.take(cols) if demand is not None else np.zeros(3)
    whole_free = np.count_nonzero(
        (snapshot.requested[:, cols[0]] <= 0) & table.has_alloc[:, 0]
    )  # fmt: skip
    out = np.zeros(len(FEATURE_GROUPS["global"]))
    out[0] = np.log1p(snapshot.queue.pending_pods) / LOG_SCALE
    np.divide(queue, total, out=out[1:4], where=table.has_total)
    np.minimum(out[1:4], 10.0, out=out[1:4])
    np.divide(used, total, out=out[4:7], where=table.has_total)
    out[7] = whole_free / table.gpu_node_count
    out[8] = feasible / max(len(snapshot), 1)
    return out


#: The columns that depend on the pod beyond its requests (task type and run time).
OWN_COLUMNS = slice(
    FEATURE_NAMES.index("task_image_classification"), FEATURE_NAMES.index("log_runtime_min") + 1
)


def _own_columns(pod: PendingPod) -> list[float]:
    """The pod's task type (one-hot) and expected run time, :data:`OWN_COLUMNS`."""
    task, runtime = pod.task_type, pod.expected_runtime_s
    return [
        float(task == KNOWN_TASK_TYPES[0]),
        float(task == KNOWN_TASK_TYPES[1]),
        float(task not in KNOWN_TASK_TYPES),
        float(runtime is not None),
        float(np.log1p((runtime or 0.0) / 60.0) / LOG_SCALE),
    ]


def alike_features(features: Float32Array, pod: PendingPod) -> Float32Array:
    """:func:`pair_features` for ``pod`` from the rows of another pod with the same
    requests on the same candidates and snapshot: only :data:`OWN_COLUMNS` differ."""
    out = features.copy()
    out[:, OWN_COLUMNS] = np.asarray(_own_columns(pod), dtype=np.float32)
    return out


def _columns(group: str) -> slice:
    """The columns of ``group`` (:func:`group_columns`), which are contiguous, as a slice."""
    cols = group_columns(group)
    return slice(cols[0], cols[-1] + 1)


_POD, _CAPACITY = _columns("pod"), _columns("capacity")
_UTIL, _PERF = _columns("utilisation"), _columns("performance")
_FRAG, _GLOBAL = _columns("fragmentation"), _columns("global")


def pair_features(pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> Float32Array:
    """Feature rows for ``pod`` on each node row of ``candidates`` (candidates x features).

    Every column is worked out in float64 and the rows are cast to float32 once, which
    gives the same numbers as casting each column."""
    table = _node_table(snapshot)
    n, cols = candidates.size, table.cols
    # take() gathers: a few times faster than fancy indexing on a pod's few candidates
    need = snapshot.request_vector(pod).take(cols)
    alloc, has = table.alloc.take(candidates, axis=0), table.has_alloc.take(candidates, axis=0)
    free = alloc - snapshot.requested.take(candidates, axis=0).take(cols, axis=1)
    free_after = free - need
    kept_after = np.maximum(free_after, 0.0)
    out = table.rows.take(candidates, axis=0)  # a copy: 0 but for the node's performance
    pod_, cap, util_, perf_, frag = (
        out[:, _POD], out[:, _CAPACITY], out[:, _UTIL], out[:, _PERF], out[:, _FRAG]
    )  # fmt: skip
    # pod: requests over the node, GPUs over 8, task type and run time
    np.divide(need, alloc, out=pod_[:, 0:3], where=has)
    pod_[:, 3] = need[0] / GPU_SCALE
    pod_[:, 4:9] = _own_columns(pod)
    # capacity: free now and after, over allocatable; pod slots taken
    np.divide(free, alloc, out=cap[:, 0:3], where=has)
    np.divide(kept_after, alloc, out=cap[:, 3:6], where=has)
    cap[:, 6] = snapshot.pod_count[candidates] / table.slots[candidates]
    # utilisation: live fractions (0 where missing), whether missing, staleness
    util = snapshot.utilisation.take(candidates, axis=0).take(cols, axis=1)
    missing = np.isnan(util)
    util_[:, 0:3] = util
    np.copyto(util_[:, 0:3], 0.0, where=missing)  # an infinity stays one in float32
    util_[:, 3] = missing[:, 0] | missing[:, 1] | missing[:, 2]
    age = snapshot.utilisation_age_s[candidates]
    util_[:, 4] = np.where(np.isfinite(age), np.minimum(age / STALE_AFTER_S, 1.0), 1.0)
    # performance: the node's against the best candidate's (the others are the node's own)
    if n:
        best = perf_[:, 1]
        best /= max(float(best.max()), 1e-9)
    # fragmentation of the node's GPUs
    gpu_alloc, gpu_free, gpu_after = alloc[:, 0], free[:, 0], free_after[:, 0]
    frag[:, 0] = has[:, 0] & (gpu_free >= gpu_alloc)
    if need[0] > 0:
        frag[:, 1] = gpu_after <= 0
    frag[:, 2] = (gpu_after > 0) & (gpu_after < gpu_alloc)
    frag[:, 3] = kept_after[:, 0] / GPU_SCALE
    out[:, _GLOBAL] = _global_context(snapshot, table, n)
    return out.astype(np.float32)
