"""The NodePorts filter: a pod's host ports must be free on the node.

A host port conflicts with one in use on the node when port and protocol are equal and the
host IPs are equal or either is ``0.0.0.0`` (every IP), as in kube-scheduler's
``HostPortInfo.CheckConflict``. Pods placed earlier in the same pass count.
"""

from __future__ import annotations

from collections.abc import Sequence

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot

REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts:
    """Nodes where a requested host port is taken are filtered out."""

    name = "NodePorts"
    static = False
    unresolvable = False

    def applies(self, pod: PendingPod, snapshot: ClusterSnapshot) -> bool:
        """Only pods with host ports are checked."""
        return bool(pod.constraints.host_ports)

    def filter(self, pod: PendingPod, snapshot: ClusterSnapshot) -> BoolArray:
        """True where none of the pod's host ports conflicts with one in use."""
        return snapshot.occupancy.free_ports(pod.constraints.host_ports)

    def reasons(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> Sequence[str]:
        """kube-scheduler's wording."""
        return (REASON,)
