"""The feature rows equal, bit for bit, a plain reference that works out every feature of
one (pod, node) pair at a time from its definition; on snapshots whose load, live
utilisation (missing, stale, infinite) and queue change between calls, so nothing the
fast version keeps per snapshot may go stale. Also: the scorer's Q-values are the
network's forward pass, masked columns included."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_node, make_pod
from hybrid_policy.domain import Namespace, PendingPod
from hybrid_policy.dqn.network import QNetwork
from hybrid_policy.dqn.scorer import DqnScore
from hybrid_policy.features import (
    FEATURE_COUNT,
    FEATURE_NAMES,
    GPU_SCALE,
    KNOWN_TASK_TYPES,
    LOG_SCALE,
    STALE_AFTER_S,
    pair_features,
)
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.resources import CPU, GPU, MEMORY

KINDS = (GPU, CPU, MEMORY)


def _share(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _global(snap: ClusterSnapshot, feasible: int) -> dict[str, float]:
    total = [float(snap.allocatable[:, snap.index[r]].sum()) for r in KINDS]
    used = [float(snap.requested[:, snap.index[r]].sum()) for r in KINDS]
    demand = snap.queue.pending_demand
    queue = [float(demand[snap.index[r]]) if demand is not None else 0.0 for r in KINDS]
    gpu = snap.index[GPU]
    gpu_nodes = [i for i in range(len(snap)) if snap.allocatable[i, gpu] > 0]
    whole = [i for i in gpu_nodes if snap.requested[i, gpu] <= 0]
    names = ("queue_gpu_demand", "queue_cpu_demand", "queue_mem_demand")
    out = {n: min(_share(q, t), 10.0) for n, q, t in zip(names, queue, total, strict=True)}
    names = ("cluster_gpu_alloc", "cluster_cpu_alloc", "cluster_mem_alloc")
    out.update({n: _share(u, t) for n, u, t in zip(names, used, total, strict=True)})
    out["log_queue_pods"] = float(np.log1p(snap.queue.pending_pods)) / LOG_SCALE
    out["whole_free_gpu_nodes"] = len(whole) / max(len(gpu_nodes), 1)
    out["feasible_node_frac"] = feasible / max(len(snap), 1)
    return out


def _row(pod: PendingPod, snap: ClusterSnapshot, row: int, best_perf: float) -> dict[str, float]:
    need = [float(snap.request_vector(pod)[snap.index[r]]) for r in KINDS]
    alloc = [float(snap.allocatable[row, snap.index[r]]) for r in KINDS]
    held = [float(snap.requested[row, snap.index[r]]) for r in KINDS]
    free = [a - h for a, h in zip(alloc, held, strict=True)]
    after = [f - n for f, n in zip(free, need, strict=True)]
    util = [float(snap.utilisation[row, snap.index[r]]) for r in KINDS]
    age = float(snap.utilisation_age_s[row])
    perf = float(snap.performance[row])
    runtime = pod.expected_runtime_s
    out: dict[str, float] = {}
    for short, i in (("gpu", 0), ("cpu", 1), ("mem", 2)):
        out[f"req_{short}_over_node"] = _share(need[i], alloc[i])
        out[f"free_{short}"] = _share(free[i], alloc[i])
        out[f"free_{short}_after"] = _share(max(after[i], 0.0), alloc[i])
        out[f"util_{short}"] = 0.0 if math.isnan(util[i]) else util[i]
    out.update(
        req_gpus_over_8=need[0] / GPU_SCALE,
        task_image_classification=float(pod.task_type == KNOWN_TASK_TYPES[0]),
        task_nlp=float(pod.task_type == KNOWN_TASK_TYPES[1]),
        task_other=float(pod.task_type not in KNOWN_TASK_TYPES),
        runtime_known=float(runtime is not None),
        log_runtime_min=float(np.log1p((runtime or 0.0) / 60.0)) / LOG_SCALE,
        pods_running_frac=int(snap.pod_count[row]) / max(int(snap.max_pods[row]), 1),
        metrics_missing=float(any(math.isnan(u) for u in util)),
        metrics_staleness=min(age / STALE_AFTER_S, 1.0) if math.isfinite(age) else 1.0,
        performance=perf / 100.0,
        performance_vs_best=perf / max(best_perf, 1e-9),
        runtime_factor=50.0 / max(perf, 1.0),
        node_gpus_all_free=float(alloc[0] > 0 and free[0] >= alloc[0]),
        fills_node_gpus=float(need[0] > 0 and after[0] <= 0),
        leaves_partial_gpus=float(0 < after[0] < alloc[0]),
        free_gpus_after_over_8=max(after[0], 0.0) / GPU_SCALE,
    )
    return out


def reference(pod: PendingPod, snap: ClusterSnapshot, rows: np.ndarray) -> np.ndarray:
    """The feature rows from their definitions, one pair at a time."""
    shared = _global(snap, rows.size)
    best = max((float(snap.performance[r]) for r in rows), default=0.0)
    out = np.zeros((rows.size, FEATURE_COUNT), dtype=np.float32)
    with np.errstate(over="ignore"):  # an infinite utilisation stays infinite
        for i, row in enumerate(rows):
            values = {**_row(pod, snap, int(row), best), **shared}
            out[i] = np.array([values[n] for n in FEATURE_NAMES], dtype=np.float64)
    return out


TASKS = st.sampled_from([None, "nlp", "image-classification", "speech"])
RUNTIMES = st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e6))
UTIL = st.one_of(st.none(), st.floats(0.0, 1.5), st.just(math.inf))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    gpus=st.integers(0, 8),
    task=TASKS,
    runtime=RUNTIMES,
    utils=st.lists(st.tuples(UTIL, st.floats(0.0, 900.0)), min_size=8, max_size=8),
)
def test_rows_equal_the_reference_as_the_snapshot_changes(
    seed: int,
    gpus: int,
    task: str | None,
    runtime: float | None,
    utils: list[tuple[float | None, float]],
) -> None:
    rng = np.random.default_rng(seed)
    nodes = [
        make_node(
            f"n{i}", gpus=int(rng.choice([0, 4, 8])), performance=float(rng.uniform(0.5, 120)),
            max_pods=int(rng.integers(0, 4)),
        )
        for i in range(8)
    ]  # fmt: skip
    snap = ClusterSnapshot(nodes, [Namespace("team-a"), Namespace("team-b", 2.0)])
    pod = dataclasses.replace(
        make_pod("p", gpus=gpus, cpu=int(rng.integers(0, 9))), task_type=task,
        expected_runtime_s=runtime,
    )  # fmt: skip
    for step in range(3):
        rows = np.sort(rng.choice(8, size=int(rng.integers(0, 9)), replace=False))
        assert np.array_equal(pair_features(pod, snap, rows), reference(pod, snap, rows))
        # The load, the metrics and the queue change between calls on the same snapshot.
        row = int(rng.integers(8))
        running = make_pod(f"r{step}", gpus=int(rng.integers(0, 3)))
        if (snap.free[row] >= snap.request_vector(running)).all():
            snap.assume(running, row)
        value, age = utils[row]
        fractions = {} if value is None else dict.fromkeys(KINDS, value)
        snap.set_utilisation(row, fractions, age)
        snap.set_queue([make_pod(f"q{i}", gpus=2) for i in range(step + 1)])


def test_scores_are_the_forward_pass_with_or_without_masked_columns() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for rows in (0, 1, 30, 517):
        x = torch.from_numpy(rng.random((rows, FEATURE_COUNT), np.float32) * 4.0 - 1.0)
        for dropped in ((), (0, 5, FEATURE_COUNT - 1)):
            network = QNetwork(FEATURE_COUNT, dropped_columns=dropped).eval()
            with torch.inference_mode():
                expected = network(x).numpy().astype(np.float64)
            assert np.array_equal(DqnScore(network).q_values(x.numpy()), expected)
