"""Score plugins: kube-scheduler's resource scorers and preferred node affinity, Trimaran's
load-aware packing, and the trivial ones baselines need.

The resource scorers follow kube-scheduler 1.34 exactly: integer arithmetic on a 0-100
scale, requests counted with the pod's own request added, and the "non-zero" defaults
(100m CPU, 200 MB memory) for pods that request nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.plugins import MinMaxNormalized, Normalized
from hybrid_policy.framework.snapshot import ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.plugins.allocation_rows import weighted_scores
from hybrid_policy.resources import CPU, GPU, MEMORY

MAX_NODE_SCORE = 100.0
#: kube-scheduler counts a pod without requests as this much (schedutil.DefaultMilliCPURequest).
NON_ZERO_CPU_MILLICORES = 100.0
#: schedutil.DefaultMemoryRequest: 200 MB.
NON_ZERO_MEMORY_BYTES = 200.0 * 1024 * 1024

#: kube-scheduler's default NodeResourcesFit scoring resources.
DEFAULT_RESOURCE_WEIGHTS: Mapping[str, float] = {CPU: 1.0, MEMORY: 1.0}


def _counted_need(pod: PendingPod, snapshot: ClusterSnapshot, resources: list[int]) -> FloatArray:
    """The pod's requests at ``resources``, a request of 0 CPU or memory counted as
    kube-scheduler's non-zero default."""
    need = snapshot.request_vector(pod)[resources].copy()
    for col, res in enumerate(resources):
        name = snapshot.resources[res]
        if need[col] == 0 and name == CPU:
            need[col] = NON_ZERO_CPU_MILLICORES
        elif need[col] == 0 and name == MEMORY:
            need[col] = NON_ZERO_MEMORY_BYTES
    return need


def _requested_after(
    pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray, resources: list[int]
) -> tuple[FloatArray, FloatArray]:
    """Requested (including the pod, with non-zero defaults) and allocatable, per column."""
    need = _counted_need(pod, snapshot, resources)
    # take() gathers: a few times faster than fancy indexing on a pod's few candidates
    requested = snapshot.requested.take(candidates, axis=0).take(resources, axis=1) + need
    allocatable = snapshot.allocatable.take(candidates, axis=0).take(resources, axis=1)
    return requested, allocatable


@dataclass
class _ResourceScorer(Normalized):
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RESOURCE_WEIGHTS))
    #: The columns and weights of each resource order seen (the weights never change).
    _by_order: dict[tuple[str, ...], tuple[list[int], FloatArray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _whole: dict[tuple[str, ...], tuple[IntArray, float] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _columns(self, snapshot: ClusterSnapshot) -> tuple[list[int], FloatArray]:
        known = self._by_order.get(snapshot.resources)
        if known is None:
            cols = [snapshot.index[r] for r in self.weights if r in snapshot.index]
            w = np.array([self.weights[snapshot.resources[c]] for c in cols], dtype=float)
            known = self._by_order[snapshot.resources] = (cols, w)
        return known

    def _compiled_columns(self, snapshot: ClusterSnapshot) -> tuple[IntArray, float] | None:
        """The columns as an array and the weights' sum, when the weights are whole
        numbers (then :func:`weighted_scores` gives the same scores); None otherwise."""
        order = snapshot.resources
        if order not in self._whole:
            cols, w = self._columns(snapshot)
            whole = bool(np.array_equal(w, np.floor(w))) and float(w.sum()) > 0
            self._whole[order] = (
                (np.asarray(cols, dtype=np.int64), float(w.sum())) if whole else None
            )
        return self._whole[order]

    def score_alike(
        self, pods: Sequence[PendingPod], snapshot: ClusterSnapshot, candidates: IntArray
    ) -> list[FloatArray]:
        """The resource scores depend on a pod only through its requests, which pods of
        one feasibility key share: one score, for each of them."""
        scores = self.score(pods[0], snapshot, candidates)
        return [scores] * len(pods)

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """Raw scores (each scorer its own)."""
        raise NotImplementedError

    def _weighted(
        self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray, free: bool
    ) -> FloatArray:
        """kube-scheduler's resource-allocation score: per resource the free (or used)
        share in integer percent, then the integer weighted mean; 0 where it cannot fit."""
        cols, w = self._columns(snapshot)
        compiled = self._compiled_columns(snapshot)
        if compiled is not None:  # whole weights: the compiled loop, the same numbers
            out: FloatArray = np.empty(candidates.size)
            weighted_scores(
                out, np.ascontiguousarray(candidates, dtype=np.int64), compiled[0],
                _counted_need(pod, snapshot, cols), snapshot.requested, snapshot.allocatable,
                w, compiled[1], free,
            )  # fmt: skip
            return out
        requested, alloc = _requested_after(pod, snapshot, candidates, cols)
        counted = alloc - requested if free else requested
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(
                (alloc > 0) & (requested <= alloc),
                np.floor(counted * MAX_NODE_SCORE / alloc),
                0.0,
            )
        total: FloatArray = np.floor(per @ w / w.sum())
        return total


@dataclass
class LeastAllocated(_ResourceScorer):
    """Prefer nodes with the most free capacity after placing the pod (spreading)."""

    name: str = "NodeResourcesFit/LeastAllocated"

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """Weighted mean over resources of ``(alloc - requested) * 100 // alloc``."""
        return self._weighted(pod, snapshot, candidates, free=True)


@dataclass
class MostAllocated(_ResourceScorer):
    """Prefer the fullest nodes that still fit (bin packing)."""

    name: str = "NodeResourcesFit/MostAllocated"

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """Weighted mean over resources of ``requested * 100 // alloc``."""
        return self._weighted(pod, snapshot, candidates, free=False)


#: Binpack's resource weights: GPUs count five times, so that wide pods find whole free nodes.
BINPACK_WEIGHTS: Mapping[str, float] = MappingProxyType({GPU: 5.0, CPU: 1.0, MEMORY: 1.0})


def binpack_scorer() -> MostAllocated:
    """The binpack scorer (MostAllocated with :data:`BINPACK_WEIGHTS`), wherever it is used:
    the ``binpack`` and ``game`` policies, ``hybrid``'s second term, the learned policies'
    fallback and the training teacher."""
    return MostAllocated(weights=dict(BINPACK_WEIGHTS))


@dataclass
class BalancedAllocation(_ResourceScorer):
    """Prefer nodes whose resources are used evenly: ``(1 - std(fractions)) * 100``."""

    name: str = "NodeResourcesBalancedAllocation"

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """kube-scheduler's balanced-allocation score over the configured resources."""
        cols, _ = self._columns(snapshot)
        requested, alloc = _requested_after(pod, snapshot, candidates, cols)
        with np.errstate(divide="ignore", invalid="ignore"):
            fractions = np.where(alloc > 0, np.minimum(requested / alloc, 1.0), 0.0)
        std = fractions.std(axis=1) if len(cols) > 1 else np.zeros(candidates.size)
        total: FloatArray = np.floor((1.0 - std) * MAX_NODE_SCORE)
        return total


@dataclass
class TargetLoadPacking(Normalized):
    """Trimaran's TargetLoadPacking on live utilisation, per resource, averaged.

    Predicted utilisation = measured utilisation + the pod's request, in percent of
    allocatable. Up to the target the score climbs from ``target`` to 100 (pack toward the
    target); above it, it falls to 0 at 100 %. A node without metrics gets the minimum
    score (0) and is never filtered out for it.
    """

    targets_percent: Mapping[str, float] = field(default_factory=lambda: {GPU: 80.0, CPU: 40.0})
    name: str = "TargetLoadPacking"

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """Mean over resources of the target-load-packing curve."""
        need = snapshot.request_vector(pod)
        total = np.zeros(candidates.size)
        for name, target in self.targets_percent.items():
            col = snapshot.index.get(name)
            if col is None:
                continue
            alloc = snapshot.allocatable[candidates, col]
            util = snapshot.utilisation[candidates, col]
            with np.errstate(divide="ignore", invalid="ignore"):
                predicted = np.where(alloc > 0, (util + need[col] / alloc) * 100.0, np.nan)
            rising = (100.0 - target) * predicted / target + target
            falling = target * (100.0 - predicted) / (100.0 - target)
            curve = np.where(predicted <= target, rising, falling)
            curve = np.where(predicted > 100.0, 0.0, curve)
            total += np.where(np.isnan(predicted), 0.0, curve)
        result: FloatArray = total / max(len(self.targets_percent), 1)
        return result


@dataclass
class RandomScore(Normalized):
    """Uniform random scores: the ``random`` baseline."""

    rng: np.random.Generator
    name: str = "Random"

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """One uniform draw in [0, 100) per candidate."""
        drawn: FloatArray = self.rng.random(candidates.size) * MAX_NODE_SCORE
        return drawn


@dataclass
class NodePerformance(MinMaxNormalized):
    """Prefer faster nodes (by performance rating): what an oracle that knows speeds does."""

    name: str = "NodePerformance"

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """The node's performance rating."""
        perf: FloatArray = snapshot.performance[candidates]
        return perf


@dataclass
class NodeAffinityScore(Normalized):
    """Preferred node affinity: the weights of the terms a node matches, as kube-scheduler's
    NodeAffinity scores them (scaled so that the best candidate gets 100; 0 when none
    matches)."""

    name: str = "NodeAffinity"

    def applies(self, pod: PendingPod, snapshot: ClusterSnapshot) -> bool:
        """Only pods with preferred node affinity terms are scored."""
        return bool(pod.constraints.preferred_node_terms)

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """``100 * sum / max`` in integers, sum over the matching terms' weights."""
        terms = pod.constraints.preferred_node_terms
        nodes = [snapshot.nodes[int(i)] for i in candidates]
        raw = np.array(
            [sum(w.weight for w in terms if w.term.matches(n.name, n.labels)) for n in nodes],
            dtype=float,
        )
        if raw.size == 0 or raw.max() <= 0:
            return np.zeros(candidates.size)
        scaled: FloatArray = np.floor(MAX_NODE_SCORE * raw / raw.max())
        return scaled
