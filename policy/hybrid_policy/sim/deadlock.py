"""Gangs stuck for ever: partly bound, and missing pods that nothing can make room for.

A pod-by-pod policy binds a gang's pods as they fit, and the bound ones hold their
capacity until the last one is bound. When every gang that is partly bound lacks room
for its missing pods even on the capacity no partial gang holds (as if every running job
had finished), no finishing job can ever free room for any of them: they are deadlocked
and never complete. The check reads capacity only (requests and pod slots), which is
what the simulator's nodes differ by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot


@dataclass(frozen=True, slots=True)
class StuckGangs:
    """Gangs partly bound when the run ended, and those of them that were deadlocked."""

    partial: int
    deadlocked: int


def stuck_gangs(
    snapshot: ClusterSnapshot,
    pods: Sequence[PendingPod],
    bound: Mapping[int, int],
    pods_of: Sequence[Sequence[int]],
    job_of: Sequence[int],
) -> StuckGangs:
    """Count the partly bound gangs (``bound``: pod index to node row, for pods of jobs
    not running) and those whose missing pods fit nowhere on the capacity that no partly
    bound gang holds."""
    held = np.zeros_like(snapshot.allocatable)
    held_pods = np.zeros(len(snapshot), dtype=np.int64)
    for pod, row in bound.items():
        held[row] += snapshot.request_vector(pods[pod])
        held_pods[row] += 1
    room = snapshot.allocatable - held
    slots = (snapshot.max_pods - held_pods).astype(float)
    partial = sorted({job_of[pod] for pod in bound})
    deadlocked = 0
    for job in partial:
        missing = [p for p in pods_of[job] if p not in bound]
        need = snapshot.request_vector(pods[missing[0]])
        wanted = need > 0
        copies = slots
        if wanted.any():
            fit = np.floor(room[:, wanted] / need[wanted] + 1e-9).min(axis=1)
            copies = np.minimum(slots, fit)
        if float(np.maximum(copies, 0.0).sum()) < len(missing):
            deadlocked += 1
    return StuckGangs(len(partial), deadlocked)
