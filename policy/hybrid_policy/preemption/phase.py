"""The preemption phase after a pass: which of the pods and gangs the pass left waiting
may take running pods' places, and whose.

Candidates are the single pods the pass could not place and the waiting gangs (all the
waiting members of a gang with fewer than ``min_member`` pods placed, one preemptor:
``gang_planner``), taken team by team from the lowest weighted GPU share up (the fair
order), in queue order within a team (a gang where its oldest member stands). For each,
on the nodes that pass its filters but lack room, reclaim is tried first, then priority,
then (pods alone) shorten (``planner``) and the reasons that buy completion time
(``completion``: defragment, wide, shorten with the queue counted, shortest); each plan's
victims leave the phase's picture of the cluster, on every node they held, and its
preemptors take their room, so two plans never count the same room. At most
``max_plans`` plans per pass, a gang's counting as one. With ``guard=takeback`` no plan
takes across teams what the take-back guard keeps from the preemptor's team (``guard``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol, overload

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.shares import namespace_share
from hybrid_policy.framework.snapshot import BoolArray, ClusterSnapshot
from hybrid_policy.preemption.completion import plan_for_completion
from hybrid_policy.preemption.fairness import TeamShares
from hybrid_policy.preemption.gang_planner import (
    GangMember,
    GangPreemptor,
    plan_gang_priority,
    plan_gang_reclaim,
)
from hybrid_policy.preemption.guard import Guard, TakeBackGuard
from hybrid_policy.preemption.model import (
    GangPlan,
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
from hybrid_policy.preemption.victims import may_be_victim, units_on
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
    #: What the phase guards against across teams (``guard.py``).
    guard: Guard = Guard.TAKEBACK


class Predictions(Protocol):
    """Run times as the policy predicts them (what ``shorten`` weighs)."""

    def duration_s(self, pod: PendingPod) -> float:
        """A waiting pod's predicted run time."""
        ...

    def remaining_s(self, pod: RunningPod) -> float:
        """A running pod's predicted time left."""
        ...


@dataclass(frozen=True, slots=True)
class PhasePlan:
    """One plan of the phase as a driver applies it: stop every victim (each once), then
    bind each pod of ``binds`` to its node row: the pod alone, or every waiting member of
    a gang."""

    plan: PreemptionPlan | GangPlan
    binds: tuple[tuple[PendingPod, int], ...]

    @property
    def victims(self) -> tuple[RunningPod, ...]:
        """The running pods the plan takes back."""
        return self.plan.victims


@dataclass
class _Picture:
    """The cluster as the phase sees it: free room per node, who runs where, GPUs held
    per team; updated by each plan it makes."""

    free: dict[int, dict[str, int]]
    on_node: dict[str, list[RunningPod]]
    shares: TeamShares
    rows: Mapping[str, int]
    #: Each node as the planner saw it last, until a plan changes it.
    rooms: dict[int, NodeRoom] = field(default_factory=dict)

    def apply(self, made: PhasePlan) -> None:
        """The victims leave (freeing room on every node they held); the pods take theirs."""
        gone = {v.uid for v in made.victims}
        taken: dict[str, float] = defaultdict(float)
        for victim in made.victims:
            self.rooms.pop(self.rows[victim.node], None)
            self.on_node[victim.node] = [p for p in self.on_node[victim.node] if p.uid not in gone]
            taken[victim.namespace] -= victim.requests.get(GPU, 0)
            free = self.free[self.rows[victim.node]]
            for r, q in victim.requests.items():
                free[r] = free.get(r, 0) + q
        for pod, row in made.binds:
            self.rooms.pop(row, None)
            for r, q in pod.requests.items():
                self.free[row][r] = self.free[row].get(r, 0) - q
            taken[pod.namespace] += pod.requests.get(GPU, 0)
        self.shares = self.shares.after(taken)

    def room(
        self,
        snapshot: ClusterSnapshot,
        row: int,
        gangs: Mapping[tuple[str, str], Sequence[RunningPod]],
        eligible: Mapping[str, bool],
    ) -> NodeRoom:
        """Node ``row`` as the planner sees it now, with its victim units (by ``gangs``
        and ``eligible``, which stay the same through a phase)."""
        known = self.rooms.get(row)
        if known is None:
            name = snapshot.nodes[row].name
            running = tuple(self.on_node[name])
            units = tuple(units_on(name, running, gangs, eligible))
            known = self.rooms[row] = NodeRoom(name, self.free[row], running, units)
        return known


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
    shares = TeamShares(dict(used), weights, gpus, active)
    return _Picture(free, on_node, shares, snapshot.node_index)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A preemptor the phase considers: a pod alone (``gang`` None), or the waiting
    members of a gang, in queue order."""

    pods: tuple[PendingPod, ...]
    gang: tuple[str, str] | None = None


def candidates(
    snapshot: ClusterSnapshot,
    left_waiting: Sequence[PendingPod],
    feasible_without_room: Mapping[str, BoolArray],
) -> list[Candidate]:
    """The preemptors in the fair order: each pod alone, and the waiting members of each
    gang with fewer than ``min_member`` pods placed (a late member of a gang that runs is a
    pod alone). A gang is left out when one of its members is missing from
    ``feasible_without_room`` or fewer of its pods are placed and waiting than it needs."""
    gangs: dict[tuple[str, str], list[PendingPod]] = {}
    out: list[Candidate] = []
    for pod in left_waiting:
        key = pod.gang_key
        if pod.gang is None or key is None or snapshot.gang_members[key] >= pod.gang.min_member:
            if pod.uid in feasible_without_room:
                out.append(Candidate((pod,)))
        else:
            gangs.setdefault(key, []).append(pod)
    for key, pods in gangs.items():
        gang = pods[0].gang
        assert gang is not None
        enough = snapshot.gang_members[key] + len(pods) >= gang.min_member
        if enough and all(p.uid in feasible_without_room for p in pods):
            out.append(Candidate(tuple(pods), key))
    return sorted(
        out,
        key=lambda c: (
            namespace_share(snapshot, c.pods[0].namespace),
            min(p.created_at_s for p in c.pods),
            c.pods[0].uid,
        ),
    )


def plan_preemptions(
    snapshot: ClusterSnapshot,
    left_waiting: Sequence[PendingPod],
    feasible_without_room: Mapping[str, BoolArray],
    running: Sequence[RunningPod],
    pending_since_s: Mapping[str, float],
    now_s: float,
    settings: PreemptionSettings,
    predictions: Predictions | None = None,
    never: Set[str] = frozenset(),
    queue: QueueView | None = None,
    owed: Mapping[str, frozenset[str]] | None = None,
) -> list[PhasePlan]:
    """Plans for the pods and gangs a pass left waiting, in the order they were made.

    ``feasible_without_room`` is, per pod uid, the nodes that pass its filters other than
    room (a pod missing from it is skipped, and so is its gang); ``pending_since_s`` when
    each became pending this time (a preempted pod waits the trigger delay again; a gang
    from its oldest member's); ``predictions`` what ``shorten`` weighs (without them it is
    not tried); ``never`` the uids whose ``preemptionPolicy`` is ``Never`` (a gang with
    one such member never preempts); ``queue`` what the driver knows of the queue (the
    work ahead of each pod, the reservations held); ``owed`` for each team the teams that
    took a job of it that still waits (what ``guard=takeback`` reads, with each running
    pod's ``took_from``)."""
    eligible = {p.uid: may_be_victim(p, now_s, settings.rules) for p in running}
    if not any(eligible.values()):
        return []
    picture = _picture(snapshot, running, left_waiting)
    gangs: dict[tuple[str, str], list[RunningPod]] = defaultdict(list)
    for member in running:
        if member.gang is not None:
            gangs[member.gang].append(member)
    guard = None
    if settings.guard is Guard.TAKEBACK:
        guard = TakeBackGuard(running, eligible, owed or {})
    context = _Context(
        snapshot, feasible_without_room, picture, settings, now_s, gangs, eligible, guard
    )
    plans: list[PhasePlan] = []
    for unit in candidates(snapshot, left_waiting, feasible_without_room):
        if len(plans) >= settings.max_plans:
            break
        waited = now_s - min(pending_since_s.get(p.uid, p.created_at_s) for p in unit.pods)
        stop = any(p.uid in never for p in unit.pods)
        if unit.gang is None:
            made = context.single(
                Preemptor(unit.pods[0], waited, stop), predictions, queue or QueueView()
            )
        else:
            made = context.gang(unit.gang, unit.pods, waited, stop)
        if made is not None:
            context.planned(made, unit.pods[0].namespace)
            plans.append(made)
    return plans


class _Rooms(Sequence[NodeRoom]):
    """A preemptor's rooms, worked out when a reason first reads one: most reasons turn
    most pods away first (a narrow pod is never wide), and the count is known before."""

    def __init__(self, count: int, make: Callable[[], list[NodeRoom]]) -> None:
        self._count = count
        self._make = make
        self._rooms: list[NodeRoom] | None = None
        #: What the planner's searches over these rooms found, kept for the next
        #: preemptor of the same requests (``planner.plan_by_tests``).
        self.searches: dict[Hashable, object] = {}

    def _all(self) -> list[NodeRoom]:
        if self._rooms is None:
            self._rooms = self._make()
        return self._rooms

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> NodeRoom: ...

    @overload
    def __getitem__(self, index: slice) -> list[NodeRoom]: ...

    def __getitem__(self, index: int | slice) -> NodeRoom | list[NodeRoom]:
        return self._all()[index]

    def __iter__(self) -> Iterator[NodeRoom]:
        return iter(self._all())


@dataclass(frozen=True, slots=True)
class _Context:
    """What every plan of one phase is made from."""

    snapshot: ClusterSnapshot
    feasible: Mapping[str, BoolArray]
    picture: _Picture
    settings: PreemptionSettings
    now_s: float
    gangs: Mapping[tuple[str, str], Sequence[RunningPod]]
    eligible: Mapping[str, bool]
    guard: TakeBackGuard | None = None
    #: Each node as a preemptor of a team sees it (the guard's say included), by team and
    #: row, until the next plan of the phase changes the picture or the guard.
    seen: dict[tuple[str, int], NodeRoom] = field(default_factory=dict)
    #: The room lists of a team's preemptors, by team and feasible rows, for as long.
    lists: dict[tuple[str, tuple[int, ...]], _Rooms] = field(default_factory=dict)

    def _room(self, row: int) -> NodeRoom:
        return self.picture.room(self.snapshot, row, self.gangs, self.eligible)

    def _room_for(self, team: str, row: int, eligible: Mapping[str, bool]) -> NodeRoom:
        """Node ``row`` as ``team``'s preemptors see it (``eligible``: who they may take)."""
        known = self.seen.get((team, row))
        if known is None:
            known = self.seen[(team, row)] = self._guarded(self._room(row), eligible)
        return known

    def planned(self, made: PhasePlan, team: str) -> None:
        """A plan of ``team`` was made: the guard and the picture change."""
        if self.guard is not None:
            self.guard.took(team, made.victims)
        self.picture.apply(made)
        self.seen.clear()
        self.lists.clear()

    def _eligible(self, team: str) -> Mapping[str, bool]:
        """Who may be a victim of ``team``'s preemptor (the guard's say included)."""
        return self.eligible if self.guard is None else self.guard.eligible_for(team)

    def _guarded(self, room: NodeRoom, eligible: Mapping[str, bool]) -> NodeRoom:
        """``room`` with only the units whose every member is in ``eligible``."""
        if self.guard is None or room.units is None:
            return room
        units = tuple(u for u in room.units if all(eligible.get(p.uid, False) for p in u.pods))
        return room if len(units) == len(room.units) else dataclasses.replace(room, units=units)

    def _rows(self, pod: PendingPod) -> list[int]:
        return [int(r) for r in self.feasible[pod.uid].nonzero()[0]]

    def single(
        self, preemptor: Preemptor, predictions: Predictions | None, queue: QueueView
    ) -> PhasePlan | None:
        """Reclaim, then priority, then shorten, then the reasons that buy completion
        time, for a pod alone."""
        team = preemptor.pod.namespace
        eligible = self._eligible(team)
        rows = self._rows(preemptor.pod)
        rooms = self.lists.get((team, tuple(rows)))
        if rooms is None:
            rooms = self.lists[(team, tuple(rows))] = _Rooms(
                len(rows), lambda: [self._room_for(team, r, eligible) for r in rows]
            )
        rules, reasons, now_s = self.settings.rules, self.settings.reasons, self.now_s
        shares, gangs = self.picture.shares, self.gangs
        plan = None
        if PreemptionReason.RECLAIM in reasons:
            plan = plan_reclaim(preemptor, rooms, shares, rules, now_s, gangs, eligible)
        if plan is None and PreemptionReason.PRIORITY in reasons:
            plan = plan_priority(preemptor, rooms, rules, now_s, gangs, eligible)
        running_wait = self.settings.wait is WaitEstimate.RUNNING
        if plan is None and PreemptionReason.SHORTEN in reasons and predictions and running_wait:
            costs = ShortenCosts(
                predictions.duration_s(preemptor.pod),
                predictions.remaining_s,
                self.settings.restart_s,
                self.settings.shorten_margin,
            )
            plan = plan_shorten(preemptor, rooms, shares, rules, now_s, costs, gangs, eligible)
        if plan is None:
            plan = plan_for_completion(
                preemptor, rooms, shares, self.settings, now_s, gangs, eligible, predictions, queue
            )
        if plan is None:
            return None
        return PhasePlan(plan, ((preemptor.pod, self.snapshot.node_index[plan.node]),))

    def gang(
        self, key: tuple[str, str], pods: Sequence[PendingPod], waited_s: float, never: bool
    ) -> PhasePlan | None:
        """Reclaim, then priority, for a gang's waiting members as one preemptor."""
        rows = {pod.uid: self._rows(pod) for pod in pods}
        names = self.snapshot.nodes
        members = tuple(GangMember(p, tuple(names[r].name for r in rows[p.uid])) for p in pods)
        preemptor = GangPreemptor(key, members, waited_s, never)
        team = pods[0].namespace
        eligible = self._eligible(team)
        rooms = {
            names[r].name: self._room_for(team, r, eligible)
            for r in sorted({r for rs in rows.values() for r in rs})
        }
        rules, reasons, now_s = self.settings.rules, self.settings.reasons, self.now_s
        shares, gangs = self.picture.shares, self.gangs
        plan = None
        if PreemptionReason.RECLAIM in reasons:
            plan = plan_gang_reclaim(preemptor, rooms, shares, rules, now_s, gangs, eligible)
        if plan is None and PreemptionReason.PRIORITY in reasons:
            plan = plan_gang_priority(preemptor, rooms, rules, now_s, gangs, eligible)
        if plan is None:
            return None
        node_of = dict(plan.placements)
        index = self.snapshot.node_index
        return PhasePlan(plan, tuple((p, index[node_of[p.uid]]) for p in pods))
