"""What a preemption holds while its victims go (:mod:`hybrid_operator.preemption`).

One :class:`Hold` per plan: a pod alone on its node, or every waiting member of a gang,
each on its own node, with one set of victims (each once, however many members need
their room). A gang's members are held, bound and released together: a gang is never
partly held. What the preemptors and the victims are told is written when the hold
starts (:func:`new_hold`): a gang's Events name the gang and all its nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.preemption.model import GangPlan, PreemptionPlan, PreemptionReason, RunningPod
from hybrid_policy.resources import GPU

#: Seconds a preemptor holds its node while its victims are still there, beyond the
#: longest of their grace periods.
HOLD_MARGIN_S = 120.0


@dataclass
class Hold:
    """Preemptors held on the nodes their victims leave: each member and its node (one
    for a pod alone), the plan, and what they and the victims are told."""

    members: tuple[tuple[PendingPod, str], ...]
    plan: PreemptionPlan | GangPlan
    since_s: float
    preemptor_message: str
    victim_message: str
    #: How long the victims may take to go: their longest grace period and a margin.
    timeout_s: float = HOLD_MARGIN_S
    #: Every victim's deletion was accepted.
    deleted: bool = False

    @property
    def pods(self) -> tuple[PendingPod, ...]:
        """The preemptors, in the plan's order."""
        return tuple(pod for pod, _ in self.members)

    @property
    def gang(self) -> tuple[str, str] | None:
        """``(namespace, name)`` of the gang held, None for a pod alone."""
        return self.plan.gang if isinstance(self.plan, GangPlan) else None

    @property
    def who(self) -> str:
        """``gang team-b/llama``, or the pod's ``namespace/name``."""
        gang = self.gang
        return self.pods[0].key if gang is None else f"gang {gang[0]}/{gang[1]}"

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes held, each once, in the members' order."""
        return tuple(dict.fromkeys(node for _, node in self.members))

    @property
    def victims(self) -> tuple[RunningPod, ...]:
        """The running pods the plan takes back, each once."""
        return tuple({v.uid: v for v in self.plan.victims}.values())

    def logged(self, message: str) -> str:
        """A message to the preemptors as a log line names them (a gang's names it already)."""
        return message if self.gang is not None else f"{self.who}: {message}"

    def failure(self, why: str) -> str:
        """What each preemptor is told when the hold ends without a binding."""
        told = f"preemption on {', '.join(self.nodes)} failed: {why}; waiting, to be planned again"
        return told if self.gang is None else f"{self.who}: {told}"


def share_text(snapshot: ClusterSnapshot, namespace: str, active: set[str]) -> str:
    """``team-a holds 0.31 of an entitled 0.20`` (of the cluster's GPUs)."""
    gpu = snapshot.index[GPU]
    total = float(snapshot.total_allocatable[gpu])
    held = snapshot.namespace_allocated.get(namespace)
    holds = float(held[gpu]) / total if held is not None and total > 0 else 0.0
    weights = sum(snapshot.weight_of(ns) for ns in active | {namespace}) or 1.0
    entitled = snapshot.weight_of(namespace) / weights
    return f"{namespace} holds {holds:.2f} of an entitled {entitled:.2f}"


def new_hold(
    plan: PreemptionPlan | GangPlan,
    members: tuple[tuple[PendingPod, str], ...],
    snapshot: ClusterSnapshot,
    active: set[str],
    now_s: float,
    timeout_s: float,
) -> Hold:
    """The hold of ``plan`` starting now, with the messages of its Events: the share of
    every team involved (reclaim), or the preemptors' priority (the lowest of a gang's)."""
    hold = Hold(members, plan, now_s, "", "", timeout_s)
    namespace = hold.pods[0].namespace
    victims = ", ".join(v.key for v in hold.victims)
    where = ", ".join(hold.nodes)
    if plan.reason is PreemptionReason.RECLAIM:
        teams = sorted({v.namespace for v in hold.victims})
        why = "; ".join(share_text(snapshot, ns, active) for ns in teams)
        mine = share_text(snapshot, namespace, active)
    else:
        why = f"{plan.reason.value}: priority {min(p.priority for p in hold.pods)}"
        mine = why
    hold.victim_message = f"preempted by {hold.who} on {where}: {why}"
    preempting = (
        f"preempting {victims} on {where} ({plan.reason.value}: {mine}); waiting for them to go"
    )
    hold.preemptor_message = preempting if hold.gang is None else f"{hold.who}: {preempting}"
    return hold
