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


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``num / den`` where ``den > 0``, else 0."""
    out: npt.NDArray[np.float64] = np.divide(
        num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0
    )
    return out


def _global_context(snapshot: ClusterSnapshot, feasible: int) -> list[float]:
    cols = [snapshot.index[r] for r in (GPU, CPU, MEMORY)]
    total = snapshot.allocatable[:, cols].sum(axis=0)
    used = snapshot.requested[:, cols].sum(axis=0)
    demand = snapshot.queue.pending_demand
    queue = demand[cols] if demand is not None else np.zeros(3)
    gpu_alloc = snapshot.allocatable[:, cols[0]]
    gpu_nodes = gpu_alloc > 0
    whole_free = (snapshot.requested[:, cols[0]] <= 0) & gpu_nodes
    n = max(len(snapshot), 1)
    return [
        float(np.log1p(snapshot.queue.pending_pods) / LOG_SCALE),
        *(float(x) for x in np.minimum(_ratio(queue, total), 10.0)),
        *(float(x) for x in _ratio(used, total)),
        float(whole_free.sum() / max(int(gpu_nodes.sum()), 1)),
        feasible / n,
    ]


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


def pair_features(pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> Float32Array:
    """Feature rows for ``pod`` on each node row of ``candidates`` (candidates x features)."""
    n = candidates.size
    cols = np.array([snapshot.index[r] for r in (GPU, CPU, MEMORY)], dtype=np.int64)
    need = snapshot.request_vector(pod)[cols]
    alloc = snapshot.allocatable[np.ix_(candidates, cols)]
    requested = snapshot.requested[np.ix_(candidates, cols)]
    free = alloc - requested
    free_after = free - need
    out = np.empty((n, FEATURE_COUNT), dtype=np.float32)
    at = 0

    def put(block: npt.ArrayLike) -> None:
        # Assignment casts to float32 as np.asarray(block, dtype=np.float32) would; a
        # scalar or a row fills the columns by broadcasting.
        nonlocal at
        arr = np.asarray(block)
        width = arr.shape[-1] if arr.ndim == 2 else 1
        out[:, at : at + width] = arr if arr.ndim == 2 else arr.reshape(-1, 1)
        at += width

    # pod
    put(_ratio(np.broadcast_to(need, alloc.shape), alloc))
    put(need[0] / GPU_SCALE)
    put(np.asarray(_own_columns(pod), dtype=np.float32).reshape(1, -1))
    # capacity
    put(_ratio(free, alloc))
    put(_ratio(np.maximum(free_after, 0.0), alloc))
    put(snapshot.pod_count[candidates] / np.maximum(snapshot.max_pods[candidates], 1))
    # utilisation
    util = snapshot.utilisation[np.ix_(candidates, cols)]
    missing = np.isnan(util).any(axis=1)
    put(np.nan_to_num(util, nan=0.0))
    put(missing)
    age = snapshot.utilisation_age_s[candidates]
    put(np.where(np.isfinite(age), np.minimum(age / STALE_AFTER_S, 1.0), 1.0))
    # performance
    perf = snapshot.performance[candidates]
    put(perf / 100.0)
    put(perf / max(float(perf.max()), 1e-9) if n else perf)
    put(50.0 / np.maximum(perf, 1.0))
    # fragmentation
    gpu_alloc, gpu_free, gpu_after = alloc[:, 0], free[:, 0], free_after[:, 0]
    put((gpu_alloc > 0) & (gpu_free >= gpu_alloc))
    put((need[0] > 0) & (gpu_after <= 0))
    put((gpu_after > 0) & (gpu_after < gpu_alloc))
    put(np.maximum(gpu_after, 0.0) / GPU_SCALE)
    # global
    put(np.asarray(_global_context(snapshot, n), dtype=np.float32).reshape(1, -1))
    assert at == FEATURE_COUNT, f"wrote {at} features, schema has {FEATURE_COUNT}"
    return out
