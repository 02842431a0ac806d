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

import functools
import weakref
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hybrid_policy import feature_rows
from hybrid_policy.domain import PendingPod
from hybrid_policy.feature_rows import fill_rows
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
    #: Each node's ``performance`` columns before the best candidate is known:
    #: ``performance / 100``, the raw performance, ``50 / max(performance, 1)``.
    perf: npt.NDArray[np.float64]


_TABLES: weakref.WeakKeyDictionary[ClusterSnapshot, _NodeTable] = weakref.WeakKeyDictionary()


def _node_table(snapshot: ClusterSnapshot) -> _NodeTable:
    """The snapshot's :class:`_NodeTable`, built once per snapshot."""
    table = _TABLES.get(snapshot)
    if table is None:
        cols = np.array([snapshot.index[r] for r in (GPU, CPU, MEMORY)], dtype=np.int64)
        alloc = snapshot.allocatable[:, cols]
        total = alloc.sum(axis=0)
        perf = snapshot.performance
        perf_columns = np.stack([perf / 100.0, perf, 50.0 / np.maximum(perf, 1.0)], axis=1)
        table = _NodeTable(
            cols, np.ascontiguousarray(alloc), alloc > 0, total, total > 0,
            np.maximum(snapshot.max_pods, 1), max(int((alloc[:, 0] > 0).sum()), 1),
            np.ascontiguousarray(perf_columns),
        )  # fmt: skip
        _TABLES[snapshot] = table
    return table


#: The columns that depend on the pod beyond its requests (task type and run time).
OWN_COLUMNS = slice(
    FEATURE_NAMES.index("task_image_classification"), FEATURE_NAMES.index("log_runtime_min") + 1
)


@functools.lru_cache(maxsize=4096)
def _own_columns(task: str | None, runtime: float | None) -> npt.NDArray[np.float64]:
    """A pod's task type (one-hot) and expected run time, :data:`OWN_COLUMNS` (read-only)."""
    out = np.array(
        [
            float(task == KNOWN_TASK_TYPES[0]),
            float(task == KNOWN_TASK_TYPES[1]),
            float(task not in KNOWN_TASK_TYPES),
            float(runtime is not None),
            float(np.log1p((runtime or 0.0) / 60.0) / LOG_SCALE),
        ]
    )
    out.flags.writeable = False
    return out


def alike_features(features: Float32Array, pod: PendingPod) -> Float32Array:
    """:func:`pair_features` for ``pod`` from the rows of another pod with the same
    requests on the same candidates and snapshot: only :data:`OWN_COLUMNS` differ."""
    out = features.copy()
    out[:, OWN_COLUMNS] = _own_columns(pod.task_type, pod.expected_runtime_s).astype(np.float32)
    return out


def _columns(group: str) -> slice:
    """The columns of ``group`` (:func:`group_columns`), which are contiguous, as a slice."""
    cols = group_columns(group)
    return slice(cols[0], cols[-1] + 1)


_POD, _CAPACITY = _columns("pod"), _columns("capacity")
_UTIL, _PERF = _columns("utilisation"), _columns("performance")
_FRAG, _GLOBAL = _columns("fragmentation"), _columns("global")
if (
    (_POD.start, _CAPACITY.start, _UTIL.start, _PERF.start, _FRAG.start, _GLOBAL.start)
    != (
        feature_rows.POD, feature_rows.CAPACITY, feature_rows.UTILISATION,
        feature_rows.PERFORMANCE, feature_rows.FRAGMENTATION, feature_rows.GLOBAL,
    )
    or FEATURE_COUNT != feature_rows.COLUMNS
    or (GPU_SCALE, STALE_AFTER_S) != (feature_rows.GPU_SCALE, feature_rows.STALE_AFTER_S)
):  # fmt: skip
    raise ImportError("hybrid_policy.feature_rows writes a different feature layout")


def pair_features(pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> Float32Array:
    """Feature rows for ``pod`` on each node row of ``candidates`` (candidates x features).

    Every column is worked out in float64 and the rows are cast to float32 once, which
    gives the same numbers as casting each column. The rows are written by one compiled
    loop (:mod:`hybrid_policy.feature_rows`): each feature is one IEEE operation or a
    comparison, so compiled code gives the same bits as numpy's array operations would."""
    table = _node_table(snapshot)
    queue = snapshot.queue
    demand = queue.pending_demand
    out = np.empty((candidates.size, FEATURE_COUNT), dtype=np.float32)
    fill_rows(
        out,
        np.ascontiguousarray(candidates, dtype=np.int64),
        table.cols,
        snapshot.request_vector(pod),
        table.alloc,
        table.has_alloc,
        table.total,
        table.has_total,
        table.perf,
        snapshot.requested,
        snapshot.pod_count,
        table.slots,
        snapshot.utilisation,
        snapshot.utilisation_age_s,
        _own_columns(pod.task_type, pod.expected_runtime_s),
        np.zeros(len(snapshot.resources)) if demand is None else demand,
        float(np.log1p(queue.pending_pods)) / LOG_SCALE,
        table.gpu_node_count,
    )
    return out
