"""What a fault left behind: the state of its pods against the operator's own gauge, and
the row of the report with every broken invariant.

A pending pod has a *reason* when it carries a ``PodScheduled=False`` condition with a
message or a ``FailedScheduling`` Event names it; a pod pending without one, once the
fault is over and every pod has had time, is *stranded*. The leader's
``hybrid_scheduler_pending_pods`` must equal the number of our pending pods the API server
holds: a difference means the operator's cache disagrees with the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hybrid_lab.faults.ledger import Ledger
from hybrid_lab.faults.records import PodRecord
from hybrid_lab.faults.rig import FaultRig
from hybrid_lab.faults.workload import NAMESPACE_WEIGHTS
from hybrid_policy.resources import PODS


@dataclass(frozen=True)
class PodsState:
    """One look at a fault's pods and at the leader's gauge."""

    pods: int
    bound: int
    pending: list[PodRecord]
    unexplained: list[PodRecord]
    fitting: list[PodRecord]
    """Pending pods for which some node has room now (so they should get it)."""
    holding: int
    """Pods still holding a node (bound, not finished)."""
    gauge: float | None
    api_pending: int
    """Pending pods of our scheduler (all faults) as the API server has them."""

    @property
    def gauge_agrees(self) -> bool:
        """Whether the leader's pending gauge equals the API server's count."""
        return self.gauge is not None and round(self.gauge) == self.api_pending

    @property
    def settled(self) -> bool:
        """Every pending pod has a reason and the operator counts them right."""
        return not self.unexplained and self.gauge_agrees

    @property
    def drained(self) -> bool:
        """Settled, nothing running, and nothing pending that could run."""
        return self.settled and not self.fitting and self.holding == 0


def has_room(pod: PodRecord, ledger: Ledger, excluded: frozenset[str] = frozenset()) -> bool:
    """Whether some live node (not in ``excluded``) has room for ``pod`` now: its
    allocatable less what the pods holding it request, one more pod included."""
    wanted = {**pod.requests, PODS: 1}
    for name in ledger.live_nodes():
        if name in excluded:
            continue
        allocatable, used = ledger.nodes[name].allocatable, ledger.used(name)
        if all(
            used.get(r, 0) + amount <= allocatable.get(r, 0)
            for r, amount in wanted.items()
            if amount
        ):
            return True
    return False


def look(rig: FaultRig, fault: str, excluded: frozenset[str] = frozenset()) -> PodsState:
    """The state of ``fault``'s pods now, with the leader's gauge; nodes in ``excluded``
    do not count as room."""
    with rig.checker.view() as ledger:
        ours = [p for p in ledger.pods.values() if p.scheduler_name == ledger.scheduler_name]
        pods = [p for p in ours if p.fault == fault]
        pending = [p for p in pods if p.pending]
        fitting = [p for p in pending if has_room(p, ledger, excluded)]
        api_pending = sum(1 for p in ours if p.pending)
    without_condition = [p for p in pending if not p.unschedulable]
    events = rig.checker.failed_scheduling(NAMESPACE_WEIGHTS) if without_condition else set()
    leader = rig.leader()
    return PodsState(
        pods=len(pods),
        bound=sum(1 for p in pods if p.node),
        pending=pending,
        unexplained=[p for p in without_condition if p.uid not in events],
        fitting=fitting,
        holding=sum(1 for p in pods if p.holds_node),
        gauge=None if leader is None else leader.pending_gauge(),
        api_pending=api_pending,
    )


@dataclass
class FaultResult:
    """One row of the report."""

    fault: str
    summary: str
    pods: int
    bound: int
    pending_with_reason: int
    stranded: list[str]
    waiting: int
    """Pods still pending at the end although a node had room for them (twice, a few
    seconds apart)."""
    gauge: float | None
    api_pending: int
    probes: int
    stuck: int
    """Capacity-probe pods left pending on an empty cluster (capacity the operator lost)."""
    overcommits: list[str]
    double_bindings: list[str]
    stale_bindings: list[str]
    lost_bindings: list[str]
    """Bindings sent to a node already deleted (or that never existed)."""
    crashes: list[str]
    recovery_s: float | None
    stray_requests: list[str] = field(default_factory=list)
    """Binding requests sent by a replica that did not lead and accepted by the API server."""
    refused_stray_requests: list[str] = field(default_factory=list)
    """Binding requests sent by a replica that did not lead and refused (a frozen replica
    sends what it decided before it froze; not a violation when it cannot take effect)."""
    fault_violations: list[str] = field(default_factory=list)
    """What the fault itself found broken (e.g. samples from the future in use)."""
    notes: list[str] = field(default_factory=list)
    landed_after_deletion: list[str] = field(default_factory=list)
    """Bindings sent before their node's deletion and applied after it: no scheduler can
    recall a request on its way, and the API server checks no node; not a violation."""

    @property
    def gauge_agrees(self) -> bool:
        """Whether the leader's pending gauge matched the API server at the end."""
        return self.gauge is not None and round(self.gauge) == self.api_pending

    @property
    def violations(self) -> list[str]:
        """Every broken invariant, one phrase each; empty when the fault was survived."""
        counts = {
            "stranded pods": len(self.stranded),
            "pods waiting though they fit": self.waiting,
            "overcommits": len(self.overcommits),
            "double bindings": len(self.double_bindings),
            "bindings by a non-leader": len(self.stale_bindings),
            "accepted binding requests by a non-leader": len(self.stray_requests),
            "bindings to a deleted node": len(self.lost_bindings),
            "probe pods stuck on free capacity": self.stuck,
            "operator crashes": len(self.crashes),
        }
        out = [f"{n} {what}" for what, n in counts.items() if n]
        if not self.gauge_agrees:
            gauge = "no leader" if self.gauge is None else f"{self.gauge:g}"
            out.append(f"pending gauge {gauge} against {self.api_pending} pending in the API")
        if self.recovery_s is None:
            out.append("not recovered")
        return out + self.fault_violations

    def details(self) -> list[str]:
        """The violations one by one (the first few of each kind), then the notes."""
        lines = []
        for title, items in (
            ("stranded", self.stranded),
            ("overcommit", self.overcommits),
            ("double binding", self.double_bindings),
            ("non-leader binding", self.stale_bindings),
            ("non-leader binding request", self.stray_requests),
            ("binding to a deleted node", self.lost_bindings),
            ("crash", self.crashes),
        ):
            lines += [f"{title}: {item}" for item in items[:3]]
            if len(items) > 3:
                lines.append(f"{title}: ... and {len(items) - 3} more")
        if self.refused_stray_requests:
            lines.append(
                f"{len(self.refused_stray_requests)} binding requests from a replica that "
                "no longer led were refused by the API server (sent after a freeze; none "
                f"took effect), e.g. {self.refused_stray_requests[0]}"
            )
        if self.landed_after_deletion:
            lines.append(
                f"{len(self.landed_after_deletion)} bindings sent before their node's "
                "deletion were applied after it (not recallable; garbage-collected)"
            )
        return lines + self.notes
