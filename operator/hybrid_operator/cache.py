"""The operator's view of the cluster, fed by watch events, read as snapshots.

It holds every node, every pod bound to a node whoever bound it (so capacity taken by
the default scheduler or by pods created with a ``nodeName`` is counted), the namespaces'
weights, and the pods this scheduler has *assumed* on a node but whose binding the watch
has not shown yet, and the pods a preemption holds a node for while their victims go.
A pod is counted once: when the watch shows it bound, its assumption
is confirmed and dropped. :meth:`ClusterCache.snapshot` turns all of it into the
:class:`~hybrid_policy.framework.snapshot.ClusterSnapshot` the policy core schedules on.

Like an informer's store, it is reconciled against full listings
(:meth:`ClusterCache.reconcile`): an object the cache last saw before a listing began and
that the listing lacks was deleted during a watch gap, and goes. A pod or node event older
than what the cache already applied of the object (a smaller ``resourceVersion``: a watch
event that lagged behind a listing) is not applied (:meth:`ClusterCache.accept`), so a
listing is never undone by the stream it overtook. Only the scheduling loop (the event
loop's thread) reads or changes it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from hybrid_operator.k8s.views import ObjectKind, PodView, WatchEvent
from hybrid_policy.domain import Namespace, NodeInfo, PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot


@dataclass(frozen=True)
class Placement:
    """A pod counted on a node."""

    pod: PendingPod
    node: str
    #: When this scheduler assumed it, or when the watch first showed it bound.
    since_s: float
    #: The decision record its Binding carried, once the watch showed it bound.
    record: str | None = None


@dataclass(frozen=True)
class Reconciled:
    """What a listing removed from the cache, and the assumed pods to schedule again."""

    pods: list[str]
    nodes: list[str]
    lost: list[PendingPod]


class ClusterCache:
    """Nodes, bound and assumed pods, and namespace weights."""

    def __init__(
        self,
        default_weight: float = 1.0,
        clock: Callable[[], float] = time.time,
        ticks: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_weight = default_weight
        self.clock = clock
        #: A monotonic clock: when each object was last seen, against listings.
        self.ticks = ticks
        self.nodes: dict[str, NodeInfo] = {}
        self.namespaces: dict[str, Namespace] = {}
        self.bound: dict[str, Placement] = {}
        self.assumed: dict[str, Placement] = {}
        #: Preemptors counted on the node their victims leave, until they are bound there.
        self.held: dict[str, Placement] = {}
        self.pods_seen: dict[str, float] = {}
        self.nodes_seen: dict[str, float] = {}
        #: The ``resourceVersion`` of the latest event applied, per pod UID and node name
        #: (a deleted object's is kept until a listing no longer shows it).
        self.versions: dict[tuple[ObjectKind, str], int] = {}

    def upsert_node(self, node: NodeInfo) -> None:
        """A node was added or changed."""
        self.nodes[node.name] = node
        self.nodes_seen[node.name] = self.ticks()

    def delete_node(self, name: str) -> list[PendingPod]:
        """A node went away; returns the assumed pods that must be scheduled again."""
        self.nodes.pop(name, None)
        self.nodes_seen.pop(name, None)
        lost = [p.pod for p in self.assumed.values() if p.node == name]
        for pod in lost:
            del self.assumed[pod.uid]
        return lost

    def upsert_namespace(self, ns: Namespace) -> None:
        """A namespace was added or its weight annotation changed."""
        self.namespaces[ns.name] = ns

    def delete_namespace(self, name: str) -> None:
        """A namespace went away."""
        self.namespaces.pop(name, None)

    def upsert_pod(self, view: PodView) -> None:
        """A pod was added or changed: count it if it holds a node, drop it when it ends."""
        uid = view.uid
        self.pods_seen[uid] = self.ticks()
        if view.finished:
            self.assumed.pop(uid, None)
        if not view.holds_node or view.node_name is None:
            self.bound.pop(uid, None)
            return
        known = self.bound.get(uid) or self.assumed.get(uid)
        since = known.since_s if known is not None else self.clock()
        self.bound[uid] = Placement(view.pod, view.node_name, since, view.record)
        self.assumed.pop(uid, None)
        self.held.pop(uid, None)

    def delete_pod(self, uid: str) -> None:
        """A pod was deleted."""
        self.bound.pop(uid, None)
        self.assumed.pop(uid, None)
        self.held.pop(uid, None)
        self.pods_seen.pop(uid, None)

    def assume(self, pod: PendingPod, node: str) -> None:
        """Count ``pod`` on ``node`` until the watch shows it bound (Reserve)."""
        if pod.uid not in self.bound:
            self.assumed[pod.uid] = Placement(pod, node, self.clock())

    def hold(self, pod: PendingPod, node: str) -> None:
        """Count the pending ``pod`` on ``node`` (its victims' room) until it is bound."""
        self.held[pod.uid] = Placement(pod, node, self.clock())

    def unhold(self, uid: str) -> Placement | None:
        """Stop counting a held pod; returns its placement if it was held."""
        return self.held.pop(uid, None)

    def forget(self, uid: str) -> None:
        """Drop an assumption whose binding failed (Unreserve); harmless if unknown."""
        self.assumed.pop(uid, None)

    def is_placed(self, uid: str) -> bool:
        """Whether the pod is bound, assumed or held for a preemption (no pass decides it
        again)."""
        return uid in self.bound or uid in self.assumed or uid in self.held

    def assumed_on(self, uid: str) -> str | None:
        """The node ``uid`` is assumed on, if it is assumed."""
        placement = self.assumed.get(uid)
        return placement.node if placement is not None else None

    def partial_gangs(self) -> set[tuple[str, str]]:
        """Gangs with some, but fewer than ``min_member``, pods bound or assumed."""
        placed: dict[tuple[str, str], int] = {}
        need: dict[tuple[str, str], int] = {}
        for placement in (*self.bound.values(), *self.assumed.values()):
            pod = placement.pod
            if pod.gang_key is not None and pod.gang is not None:
                placed[pod.gang_key] = placed.get(pod.gang_key, 0) + 1
                need[pod.gang_key] = pod.gang.min_member
        return {key for key, count in placed.items() if count < need[key]}

    def placed_since(self, since_s: float) -> list[Placement]:
        """Pods bound or assumed after ``since_s`` (metrics may not show them yet)."""
        return [p for p in (*self.bound.values(), *self.assumed.values()) if p.since_s > since_s]

    def accept(self, event: WatchEvent) -> bool:
        """Whether a pod or node event is no older than what the cache applied of its
        object (recorded as applied when so); events of other kinds, and events without
        a numeric ``resourceVersion``, always are."""
        if self._seen_table(event.kind) is None or event.version is None:
            return True
        key = (event.kind, _object_key(event))
        if self.versions.get(key, -1) > event.version:
            return False
        self.versions[key] = event.version
        return True

    def seen_since(self, event: WatchEvent, ticks: float) -> bool:
        """Whether the cache has seen the event's pod or node at or after ``ticks``."""
        seen = self._seen_table(event.kind)
        return seen is not None and seen.get(_object_key(event), -math.inf) >= ticks

    def _seen_table(self, kind: ObjectKind) -> dict[str, float] | None:
        """When each pod (by UID) or node (by name) was last seen; None for other kinds."""
        return {ObjectKind.POD: self.pods_seen, ObjectKind.NODE: self.nodes_seen}.get(kind)

    def reconcile(
        self, pod_uids: Collection[str], node_names: Collection[str], listed_at: float
    ) -> Reconciled:
        """Drop what a full listing begun at ``listed_at`` (``ticks``) no longer shows.

        An object seen after the listing began is kept: its event is newer than the list.
        """
        pods = [
            uid for uid, seen in self.pods_seen.items() if uid not in pod_uids and seen < listed_at
        ]
        for uid in pods:
            self.delete_pod(uid)
        nodes = [
            n for n, seen in self.nodes_seen.items() if n not in node_names and seen < listed_at
        ]
        lost: list[PendingPod] = []
        for name in nodes:
            lost.extend(self.delete_node(name))
        listed = {ObjectKind.POD: pod_uids, ObjectKind.NODE: node_names}
        for kind, key in list(self.versions):
            seen = self._seen_table(kind) or {}
            if key not in listed[kind] and seen.get(key, -math.inf) < listed_at:
                del self.versions[kind, key]  # gone before the listing: nothing lags now
        return Reconciled(pods, nodes, lost)

    def snapshot(self, now_s: float = 0.0) -> ClusterSnapshot:
        """A snapshot of every node with every bound, assumed and held pod counted once."""
        snap = ClusterSnapshot(list(self.nodes.values()), self.namespaces.values(), now_s=now_s)
        for placement in (*self.bound.values(), *self.assumed.values(), *self.held.values()):
            row = snap.node_index.get(placement.node)
            if row is not None and placement.pod.uid not in snap.placements:
                snap.assume(placement.pod, row)
        return snap


def _object_key(event: WatchEvent) -> str:
    """What the cache keys an object by: a pod's UID (names are reused), a node's name."""
    return event.uid if event.kind is ObjectKind.POD else event.name
