"""Filter plugins: the hard feasibility rules kube-scheduler applies.

Load-independent filters (readiness, cordons, node affinity, taints) are marked ``static`` so
the framework computes them once per constraint signature and snapshot; resource fit is
re-checked for every pod because reservations change it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hybrid_policy.domain import NodeInfo, PendingPod, TaintEffect
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot


def _node_mask(snapshot: ClusterSnapshot, keep: list[bool]) -> BoolArray:
    return np.array(keep, dtype=bool) if keep else np.zeros(0, dtype=bool)


class NodeReady:
    """Nodes whose kubelet is not Ready take no pods."""

    name = "NodeReady"
    static = True
    unresolvable = True

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """True for Ready nodes."""
        return _node_mask(snapshot, [n.ready for n in snapshot.nodes])

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """kube-scheduler reports readiness through the not-ready taint."""
        return ("node(s) had untolerated taint {node.kubernetes.io/not-ready}",)


class NodeUnschedulable:
    """Cordoned nodes (``spec.unschedulable``) take no new pods."""

    name = "NodeUnschedulable"
    static = True
    unresolvable = True

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """True for nodes that are not cordoned."""
        return _node_mask(snapshot, [not n.unschedulable for n in snapshot.nodes])

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """kube-scheduler's wording."""
        return ("node(s) were unschedulable",)


class NodeAffinity:
    """``spec.nodeSelector`` and required node affinity (terms ORed, expressions ANDed)."""

    name = "NodeAffinity"
    static = True
    unresolvable = True

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """True for nodes carrying every selected label and matching some required term."""
        return _node_mask(snapshot, [selects_node(pod, n) for n in snapshot.nodes])

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """kube-scheduler's wording."""
        return ("node(s) didn't match Pod's node affinity/selector",)


def selects_node(pod: PendingPod, node: NodeInfo) -> bool:
    """Whether ``node`` has the pod's selected labels and satisfies its required node
    affinity (kube-scheduler's ``GetRequiredNodeAffinity(pod).Match(node)``)."""
    if not all(node.labels.get(k) == v for k, v in pod.node_selector.items()):
        return False
    terms = pod.constraints.required_node_terms
    return terms is None or any(t.matches(node.name, node.labels) for t in terms)


class TaintToleration:
    """NoSchedule and NoExecute taints repel pods that do not tolerate them."""

    name = "TaintToleration"
    static = True
    unresolvable = True

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """True for nodes whose hard taints the pod tolerates."""
        return _node_mask(snapshot, [untolerated_taint(n, pod) is None for n in snapshot.nodes])

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """Names the first taint the pod does not tolerate."""
        taint = untolerated_taint(snapshot.nodes[node], pod)
        return (f"node(s) had untolerated taint {taint}",)


def untolerated_taint(node: NodeInfo, pod: PendingPod) -> str | None:
    """The first hard taint of ``node`` that ``pod`` does not tolerate, as ``{key: value}``."""
    for taint in node.taints:
        if taint.effect is TaintEffect.PREFER_NO_SCHEDULE:
            continue
        if not any(t.tolerates(taint) for t in pod.tolerations):
            return f"{{{taint.key}: {taint.value}}}" if taint.value else f"{{{taint.key}}}"
    return None


class NodeResourcesFit:
    """Requests must fit in allocatable minus what is already requested, GPUs included."""

    name = "NodeResourcesFit"
    static = False
    unresolvable = False

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """True where every requested resource and a pod slot are free."""
        need = snapshot.request_vector(pod)
        fits: BoolArray = np.all(snapshot.requested + need <= snapshot.allocatable, axis=1)
        return fits & (snapshot.pod_count < snapshot.max_pods)

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """One ``Insufficient <resource>`` per short resource, and ``Too many pods``."""
        need = snapshot.request_vector(pod)
        short = snapshot.requested[node] + need > snapshot.allocatable[node]
        out = [f"Insufficient {snapshot.resources[i]}" for i in np.flatnonzero(short)]
        if snapshot.pod_count[node] >= snapshot.max_pods[node]:
            out.append("Too many pods")
        return out
