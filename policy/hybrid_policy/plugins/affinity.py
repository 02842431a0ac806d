"""Inter-pod affinity and anti-affinity, as kube-scheduler's InterPodAffinity plugin.

Filter, on the required terms, each term counting the placed pods it selects in the
node's domain of its topology key (pods placed earlier in the same pass count):

- affinity: the node must have every term's key, and each term's domain must hold a pod
  that *all* the pod's affinity terms select. The first pod of a group may go anywhere
  with the keys when no placed pod is selected at all and its own labels satisfy its terms;
- anti-affinity: no pod a term selects may be in the node's domain;
- symmetry: a placed pod's required anti-affinity term that selects the incoming pod keeps
  it out of the placed pod's domain.

Score, on the preferred terms: per node, the weights of the pod's affinity terms (minus
those of its anti-affinity terms) times the selected pods in the domain, plus the terms
of placed pods that select the incoming pod (required affinity counting 1); min-max
normalised to 0-100 like kube-scheduler's NormalizeScore.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.occupancy import Occupancy, selects_all
from hybrid_policy.framework.plugins import Normalized
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot, FloatArray, IntArray
from hybrid_policy.plugins.scores import MAX_NODE_SCORE

AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"


@dataclass(frozen=True, slots=True)
class _Verdict:
    """Which nodes pass each of the three checks, for one pod and one snapshot state."""

    affinity: BoolArray
    anti_affinity: BoolArray
    existing: BoolArray


class InterPodAffinity:
    """Required pod affinity and anti-affinity, and placed pods' anti-affinity."""

    name = "InterPodAffinity"
    static = False
    unresolvable = False

    def __init__(self) -> None:
        self._memo: tuple[ClusterSnapshot, str, int, _Verdict] | None = None

    def applies(self, pod: PendingPod, snapshot: ClusterSnapshot) -> bool:
        """Pods with required terms, and every pod once a placed pod has anti-affinity."""
        c = pod.constraints
        return bool(c.required_affinity or c.required_anti_affinity) or bool(
            snapshot.occupancy.anti_affinity
        )

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """True where all three checks pass."""
        v = self._verdict(pod, snapshot)
        passed: BoolArray = v.affinity & v.anti_affinity & v.existing
        return passed

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """The first failing check, in kube-scheduler's order and wording."""
        v = self._verdict(pod, snapshot)
        if not v.affinity[node]:
            return (AFFINITY_REASON,)
        if not v.anti_affinity[node]:
            return (ANTI_AFFINITY_REASON,)
        return (EXISTING_ANTI_AFFINITY_REASON,)

    def _verdict(self, pod: PendingPod, snapshot: ClusterSnapshot) -> _Verdict:
        occ = snapshot.occupancy
        memo = self._memo
        if memo is not None and memo[0] is snapshot and memo[1:3] == (pod.uid, occ.version):
            return memo[3]
        verdict = _Verdict(_affinity(pod, occ), _anti_affinity(pod, occ), _existing(pod, occ))
        self._memo = (snapshot, pod.uid, occ.version, verdict)
        return verdict


def _affinity(pod: PendingPod, occ: Occupancy) -> BoolArray:
    terms = pod.constraints.required_affinity
    ok = np.ones(len(occ.nodes), dtype=bool)
    if not terms:
        return ok
    selectors = tuple(t.pods for t in terms)
    selected = occ.selected(selectors)
    near = np.ones(len(occ.nodes), dtype=bool)
    anywhere = False
    for term in terms:
        ids, _ = occ.domains(term.topology_key)
        ok &= ids >= 0
        near &= occ.in_domain(selected, term.topology_key) > 0
        anywhere = anywhere or bool(selected[ids >= 0].any())
    if not anywhere and selects_all(selectors, pod):
        return ok
    passed: BoolArray = ok & near
    return passed


def _anti_affinity(pod: PendingPod, occ: Occupancy) -> BoolArray:
    blocked = np.zeros(len(occ.nodes), dtype=bool)
    for term in pod.constraints.required_anti_affinity:
        blocked |= occ.in_domain(occ.selected((term.pods,)), term.topology_key) > 0
    passed: BoolArray = ~blocked
    return passed


def _existing(pod: PendingPod, occ: Occupancy) -> BoolArray:
    blocked = np.zeros(len(occ.nodes), dtype=bool)
    for term, carriers in occ.anti_affinity.items():
        if term.pods.matches(pod.namespace, pod.labels):
            blocked |= occ.in_domain(carriers, term.topology_key) > 0
    passed: BoolArray = ~blocked
    return passed


@dataclass
class InterPodAffinityScore(Normalized):
    """Preferred pod affinity and anti-affinity, both ways, as kube-scheduler scores them."""

    name: str = "InterPodAffinity"

    def applies(self, pod: PendingPod, snapshot: ClusterSnapshot) -> bool:
        """Pods with preferred terms, and every pod once a placed pod has scoring terms."""
        c = pod.constraints
        return bool(c.preferred_affinity or c.preferred_anti_affinity) or bool(
            snapshot.occupancy.scoring
        )

    def score(self, pod: PendingPod, snapshot: ClusterSnapshot, candidates: IntArray) -> FloatArray:
        """Summed weights of the terms near each candidate, min-max scaled to 0-100."""
        occ = snapshot.occupancy
        c = pod.constraints
        total = np.zeros(len(snapshot))
        for sign, weighted in ((1.0, c.preferred_affinity), (-1.0, c.preferred_anti_affinity)):
            for w in weighted:
                near = occ.in_domain(occ.selected((w.term.pods,)), w.term.topology_key)
                total += sign * w.weight * near
        for term, weights in occ.scoring.items():
            if term.pods.matches(pod.namespace, pod.labels):
                total += occ.in_domain(weights, term.topology_key)
        raw = total[candidates]
        if raw.size == 0 or raw.max() - raw.min() <= 0:
            return np.zeros(candidates.size)
        scaled: FloatArray = np.floor(MAX_NODE_SCORE * (raw - raw.min()) / (raw.max() - raw.min()))
        return scaled
