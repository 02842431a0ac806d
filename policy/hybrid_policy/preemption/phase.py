"""The preemption phase after a pass: which of the pods the pass left waiting may take
a running pod's place, and whose.

Candidates are the single pods the pass could not place, taken team by team from the
lowest weighted GPU share up (the fair order), in queue order within a team. For each, on
the nodes that pass its filters but lack room, reclaim is tried first, then priority,
then shorten (``planner``), then the reasons that buy completion time (``completion``:
defragment, shorten with the queue counted, shortest); each plan's victims leave the
phase's picture of the cluster and its preemptor takes their room, so two plans never
count the same room. At most ``max_plans`` plans per pass. Gangs neither preempt as one
yet nor are placed by this phase: a gang waits for its reservation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.shares import namespace_share
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot
from hybrid_policy.preemption.completion import plan_for_completion
from hybrid_policy.preemption.fairness import TeamShares
from hybrid_policy.preemption.model import (
    PreemptionPlan,
    PreemptionReason,
    PreemptionRules,
    RunningPod,
)
from hybrid_policy.preemption.planner import (
    NodeRoom,
    Preemptor,
    ShortenCosts,
    plan_priority,
    plan_reclaim,
    plan_shorten,
)
from hybrid_policy.preemption.queue import QueueView, WaitEstimate
from hybrid_policy.preemption.victims import may_be_victim
from hybrid_policy.resources import GPU


@dataclass(frozen=True, slots=True)
class PreemptionSettings:
    """What a preempting policy may do: the rules, the reasons it acts on, and how many
    plans one pass may make."""

    rules: PreemptionRules = field(default_factory=PreemptionRules)
    reasons: frozenset[PreemptionReason] = frozenset(
        {PreemptionReason.RECLAIM, PreemptionReason.PRIORITY}
    )
    max_plans: int = 2
    #: ``shorten``: the restart a victim is assumed to pay, and by how much the saved wait
    #: must exceed the victims' delay.
    restart_s: float = 60.0
    shorten_margin: float = 1.0
    #: ``shortest``: how many times longer than the preemptor a victim must be predicted
    #: to run; ``wait``: how ``shorten`` and ``shortest`` predict the preemptor's wait.
    shortest_ratio: float = 4.0
    #: ``shortest``: the most work since its checkpoint a victim may lose (None: any).
    max_lost_s: float | None = None
    #: ``wide``: the fewest GPUs of a pod that may make room by stopping narrower ones.
    wide_gpus: int = 4
    wait: WaitEstimate = WaitEstimate.RUNNING


class Predictions(Protocol):
    """Run times as the policy predicts them (what ``shorten`` weighs)."""

    def duration_s(self, pod: PendingPod) -> float:
        """A waiting pod's predicted run time."""
        ...

    def remaining_s(self, pod: RunningPod) -> float:
        """A running pod's predicted time left."""
        ...


@dataclass
class _Picture:
    """The cluster as the phase sees it: free room per node, who runs where, GPUs held
    per team; updated by each plan it makes."""

    free: dict[int, dict[str, int]]
    on_node: dict[str, list[RunningPod]]
    shares: TeamShares

    def apply(self, plan: PreemptionPlan, pod: PendingPod, row: int) -> None:
        gone = {v.uid for v in plan.victims}
        taken: dict[str, float] = defaultdict(float)
        for victim in plan.victims:
            self.on_node[victim.node] = [p for p in self.on_node[victim.node] if p.uid not in gone]
            taken[victim.namespace] -= victim.requests.get(GPU, 0)
            if victim.node == plan.node:
                for r, q in victim.requests.items():
                    self.free[row][r] = self.free[row].get(r, 0) + q
        for r, q in pod.requests.items():
            self.free[row][r] = self.free[row].get(r, 0) - q
        taken[pod.namespace] += pod.requests.get(GPU, 0)
        self.shares = self.shares.after(taken)


def _picture(
    snapshot: ClusterSnapshot, running: Sequence[RunningPod], waiting: Sequence[PendingPod]
) -> _Picture:
    room = snapshot.free
    free = {
        row: {r: int(room[row, i]) for r, i in snapshot.index.items()}
        for row in range(len(snapshot))
    }
    on_node: dict[str, list[RunningPod]] = defaultdict(list)
    used: dict[str, float] = defaultdict(float)
    for member in running:
        on_node[member.node].append(member)
        used[member.namespace] += member.requests.get(GPU, 0)
    gpus = float(snapshot.total_allocatable[snapshot.index[GPU]]) if GPU in snapshot.index else 0
    weights = {ns: snapshot.weight_of(ns) for ns in {*used, *(p.namespace for p in waiting)}}
    active = frozenset({*used, *(p.namespace for p in waiting)})
    return _Picture(free, on_node, TeamShares(dict(used), weights, gpus, active))


def plan_preemptions(
    snapshot: ClusterSnapshot,
    left_waiting: Sequence[PendingPod],
    feasible_without_room: Mapping[str, BoolArray],
    running: Sequence[RunningPod],
    pending_since_s: Mapping[str, float],
    now_s: float,
    settings: PreemptionSettings,
    predictions: Predictions | None = None,
    queue: QueueView | None = None,
) -> list[tuple[PendingPod, int, PreemptionPlan]]:
    """Plans for the pods a pass left waiting: ``(preemptor, node row, plan)``.

    ``feasible_without_room`` is, per pod uid, the nodes that pass its filters other than
    room (a pod missing from it is skipped); ``pending_since_s`` when each became pending
    this time (a preempted pod waits the trigger delay again); ``predictions`` what
    ``shorten`` weighs (without them it is not tried); ``queue`` what the driver knows of
    the queue (the work ahead of each pod, the reservations held)."""
    eligible = {p.uid: may_be_victim(p, now_s, settings.rules) for p in running}
    if not any(eligible.values()):
        return []
    picture = _picture(snapshot, running, left_waiting)
    gangs: dict[tuple[str, str], list[RunningPod]] = defaultdict(list)
    for member in running:
        if member.gang is not None:
            gangs[member.gang].append(member)
    candidates = sorted(
        (p for p in left_waiting if p.gang is None and p.uid in feasible_without_room),
        key=lambda p: (namespace_share(snapshot, p.namespace), p.created_at_s, p.uid),
    )
    plans: list[tuple[PendingPod, int, PreemptionPlan]] = []
    for pod in candidates:
        if len(plans) >= settings.max_plans:
            break
        waited = now_s - pending_since_s.get(pod.uid, pod.created_at_s)
        preemptor = Preemptor(pod, waited)
        rows = [int(r) for r in feasible_without_room[pod.uid].nonzero()[0]]
        rooms = [
            NodeRoom(
                snapshot.nodes[r].name,
                picture.free[r],
                tuple(picture.on_node[snapshot.nodes[r].name]),
            )
            for r in rows
        ]
        plan = _first_plan(preemptor, rooms, picture, settings, now_s, gangs, eligible, predictions)
        if plan is None:
            plan = plan_for_completion(
                preemptor,
                rooms,
                picture.shares,
                settings,
                now_s,
                gangs,
                eligible,
                predictions,
                queue or QueueView(),
            )
        if plan is None:
            continue
        row = snapshot.node_index[plan.node]
        picture.apply(plan, pod, row)
        plans.append((pod, row, plan))
    return plans


def _first_plan(
    preemptor: Preemptor,
    rooms: list[NodeRoom],
    picture: _Picture,
    settings: PreemptionSettings,
    now_s: float,
    gangs: Mapping[tuple[str, str], Sequence[RunningPod]],
    eligible: Mapping[str, bool],
    predictions: Predictions | None,
) -> PreemptionPlan | None:
    rules = settings.rules
    plan = None
    if PreemptionReason.RECLAIM in settings.reasons:
        plan = plan_reclaim(preemptor, rooms, picture.shares, rules, now_s, gangs, eligible)
    if plan is None and PreemptionReason.PRIORITY in settings.reasons:
        plan = plan_priority(preemptor, rooms, rules, now_s, gangs, eligible)
    shorten = PreemptionReason.SHORTEN in settings.reasons
    if plan is None and shorten and predictions and settings.wait is WaitEstimate.RUNNING:
        costs = ShortenCosts(
            predictions.duration_s(preemptor.pod),
            predictions.remaining_s,
            settings.restart_s,
            settings.shorten_margin,
        )
        plan = plan_shorten(preemptor, rooms, picture.shares, rules, now_s, costs, gangs, eligible)
    return plan
