"""Topology spread constraints, as kube-scheduler's PodTopologySpread plugin.

Counting, per constraint: the placed pods its selector selects in the pod's own namespace,
per domain of its topology key, over the nodes that have *every* key of the pod's
constraints of that kind and pass the inclusion policies (``nodeAffinityPolicy: Honor``,
the default: only nodes matching the pod's node selector and required node affinity;
``nodeTaintsPolicy: Honor``: only nodes whose taints the pod tolerates). Pods placed
earlier in the same pass count.

Filter (``DoNotSchedule``): a node lacking a key is out; otherwise the skew, the domain's
count plus one if the pod selects itself minus the smallest count over the domains (0 when
there are fewer domains than ``minDomains``), must not exceed ``maxSkew``.

Score (``ScheduleAnyway``): per constraint, the domain's count times log(domains + 2)
plus ``maxSkew - 1``, summed and rounded; fewer pods score higher after kube-scheduler's
normalisation, and nodes lacking a key score 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_policy.constraints import HOSTNAME_KEY, InclusionPolicy, PodSelector, SpreadConstraint
from hybrid_policy.domain import NodeInfo, PendingPod
from hybrid_policy.framework.plugins import Normalized
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.plugins.filters import selects_node, untolerated_taint
from hybrid_policy.plugins.scores import MAX_NODE_SCORE

REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL_REASON = f"{REASON} (missing required label)"


def _has_keys(snapshot: ClusterSnapshot, constraints: Sequence[SpreadConstraint]) -> BoolArray:
    has = np.ones(len(snapshot), dtype=bool)
    for c in constraints:
        has &= snapshot.occupancy.domains(c.topology_key)[0] >= 0
    return has


def _counted_nodes(
    pod: PendingPod, snapshot: ClusterSnapshot, c: SpreadConstraint, has_keys: BoolArray
) -> BoolArray:
    """Nodes whose pods count for ``c``: all keys present, inclusion policies passed."""
    counted = has_keys
    if c.node_affinity_policy is InclusionPolicy.HONOR:
        selector = tuple(sorted(pod.node_selector.items()))
        key = ("spread:node-affinity", selector, pod.constraints.required_node_terms)
        counted = counted & _memo_mask(snapshot, key, lambda n: selects_node(pod, n))
    if c.node_taints_policy is InclusionPolicy.HONOR:
        tolerated = ("spread:taints", pod.tolerations)
        counted = counted & _memo_mask(
            snapshot, tolerated, lambda n: untolerated_taint(n, pod) is None
        )
    return counted


def _memo_mask(
    snapshot: ClusterSnapshot, key: tuple[object, ...], test: Callable[[NodeInfo], bool]
) -> BoolArray:
    mask = snapshot.cached(key)
    if mask is None:
        mask = np.array([test(n) for n in snapshot.nodes], dtype=bool)
        snapshot.remember(key, mask)
    return mask


def _matching(pod: PendingPod, snapshot: ClusterSnapshot, c: SpreadConstraint) -> IntArray:
    """Placed pods ``c`` selects (in the pod's namespace), per node row."""
    return snapshot.occupancy.selected((PodSelector(c.selector, frozenset({pod.namespace})),))


class PodTopologySpread:
    """``whenUnsatisfiable: DoNotSchedule`` constraints as a filter."""

    name = "PodTopologySpread"
    static = False
    unresolvable = False

    def applies(self, pod: PendingPod, snapshot: ClusterSnapshot) -> bool:
        """Only pods with hard spread constraints are checked."""
        spread = pod.constraints.spread
        return bool(spread) and any(c.hard for c in spread)

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """True where every hard constraint's skew stays within its ``maxSkew``."""
        hard = [c for c in pod.constraints.spread if c.hard]
        has_keys = _has_keys(snapshot, hard)
        passed = has_keys.copy()
        for c in hard:
            passed &= self._within_skew(pod, snapshot, c, has_keys)
        return passed

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """kube-scheduler's wording, with its note for nodes lacking a topology key."""
        labels = snapshot.nodes[node].labels
        if any(c.hard and c.topology_key not in labels for c in pod.constraints.spread):
            return (MISSING_LABEL_REASON,)
        return (REASON,)

    @staticmethod
    def _within_skew(
        pod: PendingPod, snapshot: ClusterSnapshot, c: SpreadConstraint, has_keys: BoolArray
    ) -> BoolArray:
        ids, domains = snapshot.occupancy.domains(c.topology_key)
        counted = _counted_nodes(pod, snapshot, c, has_keys)
        per_node = _matching(pod, snapshot, c)
        per_domain = np.bincount(ids[counted], weights=per_node[counted], minlength=domains)
        present = np.zeros(domains, dtype=bool)
        present[ids[counted]] = True
        enough = int(present.sum()) >= c.min_domains
        lowest = float(per_domain[present].min()) if enough and present.any() else 0.0
        itself = 1 if c.selector is not None and c.selector.matches(pod.labels) else 0
        here = np.where(ids >= 0, per_domain[np.maximum(ids, 0)] if domains else 0.0, 0.0)
        within: BoolArray = (ids >= 0) & (here + itself - lowest <= c.max_skew)
        return within


@dataclass
class PodTopologySpreadScore(Normalized):
    """``whenUnsatisfiable: ScheduleAnyway`` constraints as a score."""

    name: str = "PodTopologySpread"

    def applies(self, pod: PendingPod, snapshot: ClusterSnapshot) -> bool:
        """Only pods with soft spread constraints are scored."""
        spread = pod.constraints.spread
        return bool(spread) and any(not c.hard for c in spread)

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """kube-scheduler's spread score, normalised so that emptier domains score higher."""
        soft = [c for c in pod.constraints.spread if not c.hard]
        has_keys = _has_keys(snapshot, soft)
        scored = has_keys[candidates]
        raw = np.zeros(candidates.size)
        for c in soft:
            ids, domains = snapshot.occupancy.domains(c.topology_key)
            per_node = _matching(pod, snapshot, c)
            if c.topology_key == HOSTNAME_KEY:
                count = per_node[candidates].astype(float)
                size = int(scored.sum())
            else:
                counted = _counted_nodes(pod, snapshot, c, has_keys)
                per_domain = np.bincount(ids[counted], weights=per_node[counted], minlength=domains)
                size = np.unique(ids[candidates[scored]]).size
                count = (
                    per_domain[np.maximum(ids[candidates], 0)]
                    if domains
                    else np.zeros(candidates.size)
                )
            raw += count * np.log(size + 2) + (c.max_skew - 1)
        raw = np.floor(raw + 0.5)  # Go's math.Round on non-negative values
        return _normalise(raw, scored)


def _normalise(raw: FloatArray, scored: BoolArray) -> FloatArray:
    """kube-scheduler's PodTopologySpread NormalizeScore: ``100 * (max + min - s) / max``
    over the scored nodes (100 everywhere when max is 0); unscored nodes get 0."""
    out = np.zeros(raw.size)
    if not scored.any():
        return out
    low, high = float(raw[scored].min()), float(raw[scored].max())
    if high == 0:
        out[scored] = MAX_NODE_SCORE
    else:
        out[scored] = np.floor(MAX_NODE_SCORE * (high + low - raw[scored]) / high)
    return out
