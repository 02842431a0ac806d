"""Which pods are placed where, indexed for the constraints between pods.

A snapshot counts placed pods as sums of requests; inter-pod affinity, topology spread and
host ports also need to know *which* pods sit on a node. :class:`Occupancy` keeps, per
node row and up to date on every assume and forget:

- per pod selector (what an affinity term or spread constraint counts): how many placed
  pods it selects, counted on first use and then kept incrementally;
- per required anti-affinity term of a placed pod: how many pods carrying it (so that an
  incoming pod respects the anti-affinity of pods already there);
- per term of a placed pod that scores its neighbours: the term's summed signed weight;
- the host ports in use;

and the topology domains of each label key (nodes do not change within a snapshot). A pod
without constraints costs one dictionary entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from hybrid_policy.constraints import NO_CONSTRAINTS, HostPort, PodAffinityTerm, PodSelector
from hybrid_policy.domain import NodeInfo, PendingPod
from hybrid_policy.framework.arrays import BoolArray, FloatArray, IntArray

#: kube-scheduler's ``hardPodAffinityWeight``: how much a placed pod's *required*
#: affinity term adds to the score of nodes near it for the pods the term selects.
HARD_POD_AFFINITY_WEIGHT = 1.0


def selects_all(selectors: Iterable[PodSelector], pod: PendingPod) -> bool:
    """Whether every selector of ``selectors`` selects ``pod``."""
    return all(s.matches(pod.namespace, pod.labels) for s in selectors)


class Occupancy:
    """Placed pods by node row, with the counts inter-pod constraints read."""

    def __init__(self, nodes: Sequence[NodeInfo]) -> None:
        self.nodes = nodes
        #: Every placed pod and its node row, by UID.
        self.pods: dict[str, tuple[PendingPod, int]] = {}
        #: Required anti-affinity terms of placed pods: pods carrying each, per node.
        self.anti_affinity: dict[PodAffinityTerm, FloatArray] = {}
        #: Affinity terms of placed pods that score their neighbours: weight per node.
        self.scoring: dict[PodAffinityTerm, FloatArray] = {}
        #: Host ports in use, by node row.
        self.ports: dict[int, list[HostPort]] = {}
        #: Changes with every add and remove (plugins memoise per pod and version).
        self.version = 0
        self._selected: dict[tuple[PodSelector, ...], IntArray] = {}
        self._domains: dict[str, tuple[IntArray, int]] = {}

    def add(self, pod: PendingPod, row: int) -> None:
        """Count ``pod`` on node row ``row``."""
        self.pods[pod.uid] = (pod, row)
        self.version += 1
        self._count(pod, row, 1)

    def remove(self, uid: str) -> None:
        """Stop counting the pod ``uid``; harmless when it is not counted."""
        entry = self.pods.pop(uid, None)
        if entry is not None:
            self.version += 1
            self._count(entry[0], entry[1], -1)

    def clear(self) -> None:
        """Forget every placed pod (node domains are kept)."""
        self.pods.clear()
        self.anti_affinity.clear()
        self.scoring.clear()
        self.ports.clear()
        self._selected.clear()
        self.version += 1

    def selected(self, selectors: tuple[PodSelector, ...]) -> IntArray:
        """Placed pods that every one of ``selectors`` selects, per node row (read only)."""
        counts = self._selected.get(selectors)
        if counts is None:
            counts = np.zeros(len(self.nodes), dtype=np.int64)
            for pod, row in self.pods.values():
                if selects_all(selectors, pod):
                    counts[row] += 1
            self._selected[selectors] = counts
        return counts

    def domains(self, key: str) -> tuple[IntArray, int]:
        """Domain index of every node row for label ``key`` (-1 where the node lacks
        it), and how many domains there are."""
        known = self._domains.get(key)
        if known is None:
            index: dict[str, int] = {}
            ids = np.full(len(self.nodes), -1, dtype=np.int64)
            for row, node in enumerate(self.nodes):
                value = node.labels.get(key)
                if value is not None:
                    ids[row] = index.setdefault(value, len(index))
            known = self._domains[key] = (ids, len(index))
        return known

    def in_domain(self, per_node: IntArray | FloatArray, key: str) -> FloatArray:
        """For every node row, the sum of ``per_node`` over the node's ``key`` domain;
        0 where the node lacks the label."""
        ids, count = self.domains(key)
        has = ids >= 0
        totals = np.bincount(ids[has], weights=per_node[has], minlength=count)
        out: FloatArray = np.zeros(len(self.nodes))
        out[has] = totals[ids[has]]
        return out

    def free_ports(self, wanted: tuple[HostPort, ...]) -> BoolArray:
        """True on node rows where none of ``wanted`` conflicts with a port in use."""
        free = np.ones(len(self.nodes), dtype=bool)
        for row, used in self.ports.items():
            if any(w.conflicts(u) for w in wanted for u in used):
                free[row] = False
        return free

    def _count(self, pod: PendingPod, row: int, sign: int) -> None:
        for selectors, counts in self._selected.items():
            if selects_all(selectors, pod):
                counts[row] += sign
        c = pod.constraints
        if c is NO_CONSTRAINTS:
            return
        for term in c.required_anti_affinity:
            _bump(self.anti_affinity, term, row, sign, len(self.nodes))
        weighted = [(t, HARD_POD_AFFINITY_WEIGHT) for t in c.required_affinity]
        weighted += [(w.term, float(w.weight)) for w in c.preferred_affinity]
        weighted += [(w.term, -float(w.weight)) for w in c.preferred_anti_affinity]
        for term, weight in weighted:
            _bump(self.scoring, term, row, sign * weight, len(self.nodes))
        if c.host_ports and sign > 0:
            self.ports.setdefault(row, []).extend(c.host_ports)
        elif c.host_ports:
            used = self.ports.get(row, [])
            for port in c.host_ports:
                if port in used:
                    used.remove(port)
            if not used:
                self.ports.pop(row, None)


def _bump(
    table: dict[PodAffinityTerm, FloatArray],
    term: PodAffinityTerm,
    row: int,
    amount: float,
    nodes: int,
) -> None:
    values = table.get(term)
    if values is None:
        values = table[term] = np.zeros(nodes)
    values[row] += amount
    if amount < 0 and not values.any():
        del table[term]
