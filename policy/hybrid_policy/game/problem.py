"""The contention problem of one scheduling pass, as plain arrays (no solver here).

Pods of a batch are aggregated into classes: same namespace and same constraint signature,
so pods of a class are interchangeable and are placed in queue order. Each class has a few
candidate slots, one per node among the nodes its head pod's ScoreTable rates best: enough
to hold the class's pods side by side, at least four and at most top-k.
The game's players are the namespaces; a player's strategy is how many pods of each of its
classes it places on each of its slots. Amounts are measured in dominant shares of the
cluster (a pod's largest request over the cluster's allocatable of that resource), the unit
DRF uses. :mod:`hybrid_policy.game.program` turns this into a convex program.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import ScoreTable
from hybrid_policy.framework.shares import dominant_share_of
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray, IntArray

#: Candidate nodes per class: at least MIN_CANDIDATES of its best-scored nodes, more (in
#: score order) while its pending pods do not all fit on the candidates, at most top-k.
MIN_CANDIDATES = 4
DEFAULT_TOP_K = 8


@dataclass(frozen=True)
class PodClass:
    """Pods of one namespace with identical constraints, in queue order."""

    namespace: str
    pods: tuple[PendingPod, ...]
    table: ScoreTable


@dataclass(frozen=True)
class ContentionProblem:
    """Players, classes, slots and capacities of one pass.

    Indices: ``i`` namespace (player), ``c`` class, ``s`` slot, ``u`` node of the problem
    (a node row of the snapshot is ``node_rows[u]``), ``r`` resource.
    """

    namespaces: tuple[str, ...]
    #: Fair-share weight of each namespace (> 0).
    weights: FloatArray
    #: Dominant share each namespace already holds (its running pods).
    held_share: FloatArray
    classes: tuple[PodClass, ...]
    #: Namespace index of each class.
    class_namespace: IntArray
    #: Pending pods of each class.
    class_demand_pods: FloatArray
    #: Dominant share of one pod of each class.
    class_pod_share: FloatArray
    #: Class and problem-node index of each slot.
    slot_class: IntArray
    slot_node: IntArray
    #: The class's normalised score for the slot's node, in [0, 1].
    slot_score: FloatArray
    #: Pods of the slot's class that fit side by side on its node now (capped by demand).
    slot_fit_pods: FloatArray
    #: One pod's request over the node's allocatable, per slot and resource (S x R).
    slot_request_fraction: FloatArray
    #: Snapshot node row of each problem node.
    node_rows: IntArray
    #: Free and used fractions of each problem node's allocatable (U x R).
    node_free_fraction: FloatArray
    node_used_fraction: FloatArray
    #: Per class, the pods of each of its units in queue order: 1 for a single pod, more
    #: for the pods of one gang (placed all or none). Empty: every pod is a unit.
    class_units: tuple[tuple[int, ...], ...] = field(default=())

    def units_of(self, c: int) -> tuple[int, ...]:
        """Pods per unit of class ``c``, in queue order."""
        if self.class_units:
            return self.class_units[c]
        return (1,) * int(self.class_demand_pods[c])

    @property
    def pattern(self) -> tuple[object, ...]:
        """What fixes the program's sparsity: everything else is a Parameter value."""
        return (
            len(self.namespaces),
            self.node_rows.size,
            self.node_free_fraction.shape[1],
            self.class_namespace.tobytes(),
            self.slot_class.tobytes(),
            self.slot_node.tobytes(),
        )

    def served_share(self, allocation: FloatArray) -> FloatArray:
        """Dominant share each namespace is given by slot amounts ``allocation``."""
        per_slot = allocation * self.class_pod_share[self.slot_class]
        namespace_of_slot = self.class_namespace[self.slot_class]
        served: FloatArray = np.bincount(
            namespace_of_slot, weights=per_slot, minlength=len(self.namespaces)
        ).astype(float)
        return served

    def class_amounts(self, allocation: FloatArray) -> FloatArray:
        """Pods of each class placed by slot amounts ``allocation``."""
        amounts: FloatArray = np.bincount(
            self.slot_class, weights=allocation, minlength=len(self.classes)
        ).astype(float)
        return amounts

    def node_load_fraction(self, allocation: FloatArray) -> FloatArray:
        """New load on each problem node, as a fraction of its allocatable (U x R)."""
        load = np.zeros_like(self.node_free_fraction)
        np.add.at(load, self.slot_node, self.slot_request_fraction * allocation[:, None])
        return load


def copies_that_fit(snapshot: ClusterSnapshot, request: FloatArray, rows: IntArray) -> FloatArray:
    """How many pods of ``request`` fit side by side on each of node rows ``rows`` now."""
    slots = (snapshot.max_pods[rows] - snapshot.pod_count[rows]).astype(float)
    wanted = request > 0
    if wanted.any():
        free = snapshot.allocatable[np.ix_(rows, np.flatnonzero(wanted))]
        free = free - snapshot.requested[np.ix_(rows, np.flatnonzero(wanted))]
        slots = np.minimum(slots, np.floor(free / request[wanted] + 1e-9).min(axis=1))
    fit: FloatArray = np.maximum(slots, 0.0)
    return fit


def candidates_needed(fit: FloatArray, demand: int, minimum: int = MIN_CANDIDATES) -> int:
    """How many of the nodes (in score order, with ``fit`` pods each) a class of ``demand``
    pods keeps: the fewest whose fits add up to the demand, and at least ``minimum``."""
    enough = int(np.searchsorted(np.cumsum(fit), demand - 1e-9)) + 1
    return min(max(enough, minimum), fit.size)


def build_problem(
    classes: Sequence[PodClass],
    snapshot: ClusterSnapshot,
    score_scale: float,
    top_k: int = DEFAULT_TOP_K,
) -> ContentionProblem:
    """Aggregate the batch's classes, their candidate nodes and the nodes' capacities.

    ``score_scale`` maps the profile's weighted total scores onto [0, 1] (100 times the
    sum of the scorer weights).
    """
    names = sorted({c.namespace for c in classes})
    ns_index = {name: i for i, name in enumerate(names)}
    weights = np.array([snapshot.weight_of(n) for n in names])
    held = np.zeros(len(names))
    for name, i in ns_index.items():
        alloc = snapshot.namespace_allocated.get(name)
        if alloc is not None:
            held[i] = dominant_share_of(snapshot, alloc)
    slot_class: list[int] = []
    slot_rows: list[int] = []
    slot_score: list[float] = []
    slot_fit: list[float] = []
    for c, pod_class in enumerate(classes):
        table = pod_class.table
        order = np.lexsort((table.candidates, -table.scores))[:top_k]
        request = snapshot.request_vector(pod_class.pods[0])
        fit = np.minimum(
            copies_that_fit(snapshot, request, table.candidates[order]), len(pod_class.pods)
        )
        keep = candidates_needed(fit, len(pod_class.pods))
        order, fit = order[:keep], fit[:keep]
        rows = table.candidates[order]
        slot_class.extend([c] * rows.size)
        slot_rows.extend(int(r) for r in rows)
        slot_score.extend(np.clip(table.scores[order] / score_scale, 0.0, 1.0).tolist())
        slot_fit.extend(fit.tolist())
    node_rows, slot_node = np.unique(np.array(slot_rows, dtype=np.int64), return_inverse=True)
    alloc = snapshot.allocatable[node_rows]
    safe = np.where(alloc > 0, alloc, 1.0)
    requests = np.array([snapshot.request_vector(c.pods[0]) for c in classes])
    s_class = np.array(slot_class, dtype=np.int64)
    return ContentionProblem(
        namespaces=tuple(names),
        weights=weights,
        held_share=held,
        classes=tuple(classes),
        class_namespace=np.array([ns_index[c.namespace] for c in classes], dtype=np.int64),
        class_demand_pods=np.array([float(len(c.pods)) for c in classes]),
        class_pod_share=np.array(
            [dominant_share_of(snapshot, requests[c]) for c in range(len(classes))]
        ),
        slot_class=s_class,
        slot_node=slot_node.astype(np.int64),
        slot_score=np.array(slot_score),
        slot_fit_pods=np.array(slot_fit),
        slot_request_fraction=requests[s_class] / safe[slot_node],
        node_rows=node_rows,
        node_free_fraction=np.clip((alloc - snapshot.requested[node_rows]) / safe, 0.0, None),
        node_used_fraction=np.clip(snapshot.requested[node_rows] / safe, 0.0, None),
        class_units=tuple(unit_sizes(c.pods, snapshot) for c in classes),
    )


def unit_sizes(pods: Sequence[PendingPod], snapshot: ClusterSnapshot) -> tuple[int, ...]:
    """How many of ``pods`` each unit holds, in the order of the units' first pods: a gang
    still short of its ``min_member`` is one unit, any other pod a unit of its own."""
    sizes: list[int] = []
    index: dict[tuple[str, str], int] = {}
    for pod in pods:
        key, gang = pod.gang_key, pod.gang
        if key is None or gang is None or snapshot.gang_members[key] >= gang.min_member:
            sizes.append(1)
            continue
        if key not in index:
            index[key] = len(sizes)
            sizes.append(0)
        sizes[index[key]] += 1
    return tuple(sizes)


__all__ = [
    "DEFAULT_TOP_K",
    "MIN_CANDIDATES",
    "ContentionProblem",
    "PodClass",
    "build_problem",
    "candidates_needed",
    "copies_that_fit",
    "dominant_share_of",
    "unit_sizes",
]
