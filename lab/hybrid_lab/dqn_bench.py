"""Inference cost of the DQN scorer: all feasible nodes of one pod, timed per call.

Builds a cluster of ``nodes`` 8-GPU nodes with random performance and random load, then
times :meth:`DqnScore.score` plus normalisation (features and one forward pass) for a
pod that fits everywhere, single-threaded, and reports p50 and p95 in milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from hybrid_policy.domain import NodeInfo, PendingPod
from hybrid_policy.dqn.network import QNetwork
from hybrid_policy.dqn.scorer import DqnScore
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.resources import CPU, GIB, GPU, MEMORY


@dataclass(frozen=True)
class Timing:
    """Latency of scoring every node for one pod."""

    nodes: int
    p50_ms: float
    p95_ms: float
    repeats: int


def loaded_cluster(nodes: int, rng: np.random.Generator) -> ClusterSnapshot:
    """``nodes`` 8-GPU nodes, performance 50-100, each with 0-6 GPUs requested."""
    infos = [
        NodeInfo(
            name=f"node-{i:05d}",
            allocatable={CPU: 64_000, MEMORY: 512 * GIB, GPU: 8},
            performance=float(rng.integers(50, 101)),
        )
        for i in range(nodes)
    ]
    snap = ClusterSnapshot(infos)
    used = rng.integers(0, 7, size=nodes).astype(float)
    snap.requested[:, snap.index[GPU]] = used
    snap.requested[:, snap.index[CPU]] = used * 4_000
    snap.requested[:, snap.index[MEMORY]] = used * 32 * GIB
    snap.pod_count[:] = used.astype(np.int64)
    snap.utilisation[:] = snap.requested / snap.allocatable * 0.8
    snap.utilisation_age_s[:] = 20.0
    return snap


def time_scoring(network: QNetwork, nodes: int, repeats: int, seed: int = 0) -> Timing:
    """p50/p95 of one scoring call over ``repeats`` calls (after a few warm-up calls)."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    snap = loaded_cluster(nodes, rng)
    pod = PendingPod(
        namespace="team-a",
        name="bench",
        uid="bench",
        requests={CPU: 8_000, MEMORY: 64 * GIB, GPU: 2},
        created_at_s=0.0,
        task_type="nlp",
    )
    scorer = DqnScore(network)
    candidates = np.arange(nodes, dtype=np.int64)
    samples = []
    for i in range(repeats + 10):
        tick = time.perf_counter()
        scorer.normalize(scorer.score(pod, snap, candidates))
        if i >= 10:
            samples.append((time.perf_counter() - tick) * 1000.0)
    arr = np.array(samples)
    return Timing(nodes, float(np.percentile(arr, 50)), float(np.percentile(arr, 95)), repeats)
