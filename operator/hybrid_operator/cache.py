"""The operator's view of the cluster, fed by watch events, read as snapshots.

It holds every node, every pod bound to a node whoever bound it (so capacity taken by
the default scheduler or by pods created with a ``nodeName`` is counted), the namespaces'
weights, and the pods this scheduler has *assumed* on a node but whose binding the watch
has not shown yet. A pod is counted once: when the watch shows it bound, its assumption
is confirmed and dropped. :meth:`ClusterCache.snapshot` turns all of it into the
:class:`~hybrid_policy.framework.snapshot.ClusterSnapshot` the policy core schedules on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hybrid_operator.k8s.convert import Body, namespace, node_info, pending_pod
from hybrid_operator.k8s.problems import Problem
from hybrid_policy.domain import Namespace, NodeInfo, PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class Placement:
    """A pod counted on a node."""

    pod: PendingPod
    node: str
    #: When this scheduler assumed it, or when the watch first showed it bound.
    since_s: float


class ClusterCache:
    """Nodes, bound and assumed pods, and namespace weights."""

    def __init__(self, default_weight: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.default_weight = default_weight
        self.clock = clock
        self.nodes: dict[str, NodeInfo] = {}
        self.namespaces: dict[str, Namespace] = {}
        self.bound: dict[str, Placement] = {}
        self.assumed: dict[str, Placement] = {}

    def upsert_node(self, body: Body) -> list[Problem]:
        """A node was added or changed."""
        node, problems = node_info(body)
        if node is not None:
            self.nodes[node.name] = node
        return problems

    def delete_node(self, name: str) -> list[PendingPod]:
        """A node went away; returns the assumed pods that must be scheduled again."""
        self.nodes.pop(name, None)
        lost = [p.pod for p in self.assumed.values() if p.node == name]
        for pod in lost:
            del self.assumed[pod.uid]
        return lost

    def upsert_namespace(self, body: Body) -> list[Problem]:
        """A namespace was added or its weight annotation changed."""
        ns, problems = namespace(body, self.default_weight)
        if ns is not None:
            self.namespaces[ns.name] = ns
        return problems

    def delete_namespace(self, name: str) -> None:
        """A namespace went away."""
        self.namespaces.pop(name, None)

    def upsert_pod(self, body: Body) -> None:
        """A pod was added or changed: count it if it holds a node, drop it when it ends."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        node = (body.get("spec") or {}).get("nodeName")
        phase = (body.get("status") or {}).get("phase")
        # A terminating pod still holds its node until it is gone, as kube-scheduler counts it.
        if not node or phase in TERMINAL_PHASES:
            self.bound.pop(uid, None)
            if phase in TERMINAL_PHASES:
                self.assumed.pop(uid, None)
            return
        pod, _ = pending_pod(body)
        if pod is None:  # unusable: the kubelet refuses it too, so it holds nothing
            self.bound.pop(uid, None)
            return
        known = self.bound.get(uid) or self.assumed.get(uid)
        since = known.since_s if known is not None else self.clock()
        self.bound[uid] = Placement(pod, str(node), since)
        self.assumed.pop(uid, None)

    def delete_pod(self, uid: str) -> None:
        """A pod was deleted."""
        self.bound.pop(uid, None)
        self.assumed.pop(uid, None)

    def assume(self, pod: PendingPod, node: str) -> None:
        """Count ``pod`` on ``node`` until the watch shows it bound (Reserve)."""
        if pod.uid not in self.bound:
            self.assumed[pod.uid] = Placement(pod, node, self.clock())

    def forget(self, uid: str) -> None:
        """Drop an assumption whose binding failed (Unreserve); harmless if unknown."""
        self.assumed.pop(uid, None)

    def is_placed(self, uid: str) -> bool:
        """Whether the pod is bound or assumed (it must never be bound again)."""
        return uid in self.bound or uid in self.assumed

    def placed_since(self, since_s: float) -> list[Placement]:
        """Pods bound or assumed after ``since_s`` (metrics may not show them yet)."""
        return [p for p in (*self.bound.values(), *self.assumed.values()) if p.since_s > since_s]

    def snapshot(self, now_s: float = 0.0) -> ClusterSnapshot:
        """A snapshot of every node with every bound and assumed pod counted once."""
        snap = ClusterSnapshot(list(self.nodes.values()), self.namespaces.values(), now_s=now_s)
        for placement in (*self.bound.values(), *self.assumed.values()):
            row = snap.node_index.get(placement.node)
            if row is not None and placement.pod.uid not in snap.placements:
                snap.assume(placement.pod, row)
        return snap
