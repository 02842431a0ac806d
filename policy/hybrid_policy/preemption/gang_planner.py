"""A waiting gang preempts as one preemptor: a node for every waiting member, all or
nothing, and one set of victims that passes the reason's test for the whole gang.

A first test answers most gangs at once: if the members would not fit even with every
unit that may be taken gone, there is no plan. Otherwise the members are given nodes one
after the other. Each takes the node where making room costs least: room already free (or
freed by the victims its earlier members chose) costs nothing, otherwise the cheapest
minimal set of further units there (``victims.minimal_units``); then fewest victims, then
the node's name. A node is offered only while the union of victims so far passes the set
test with the whole gang's GPUs: for reclaim and priority a part of a passing set passes
too, so a union that fails part way can only fail once complete. If a member finds no
node there is no plan and nothing is taken. The union is then pruned in reverse, as for a
pod alone: each unit, costliest first, is spared if every member still fits in the room
the others leave (each on its node if it can, else on the first of its nodes by name that
has room). The same state always gives the same plan.

``shorten`` stays a single pod's: its wait and delay estimates are one pod's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hybrid_policy.domain import PendingPod
from hybrid_policy.preemption.fairness import TeamShares, reclaim_allowed
from hybrid_policy.preemption.model import (
    GangPlan,
    PreemptionReason,
    PreemptionRules,
    RunningPod,
)
from hybrid_policy.preemption.planner import NodeRoom, SetTest, UnitTest, victims_allowed
from hybrid_policy.preemption.victims import (
    VictimUnit,
    gpus_by_team,
    minimal_units,
    shortfall,
    units_on,
)
from hybrid_policy.resources import GPU

GangPods = Mapping[tuple[str, str], Sequence[RunningPod]]


@dataclass(frozen=True, slots=True)
class GangMember:
    """A waiting member of a gang and the nodes it could use but for room, by name."""

    pod: PendingPod
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GangPreemptor:
    """A waiting gang as one preemptor: its waiting members, how long since its oldest
    member became pending, and whether any member's ``preemptionPolicy`` is ``Never``."""

    gang: tuple[str, str]
    members: tuple[GangMember, ...]
    waiting_s: float
    never: bool = False

    @property
    def namespace(self) -> str:
        """The gang's team."""
        return self.gang[0]

    @property
    def priority(self) -> int:
        """The lowest priority among the members: every member must outrank a victim."""
        return min(m.pod.priority for m in self.members)

    def gpus(self) -> float:
        """GPUs the waiting members request together."""
        return float(sum(m.pod.requests.get(GPU, 0) for m in self.members))


def _uids(unit: VictimUnit) -> tuple[str, ...]:
    """The unit's identity: its pods' uids (a gang's unit is the same from any node)."""
    return tuple(p.uid for p in unit.pods)


def _left(rooms: Mapping[str, NodeRoom], units: Iterable[VictimUnit]) -> dict[str, Counter[str]]:
    """Room per node once ``units`` are taken back (on every node their members hold)."""
    left = {name: Counter(room.free) for name, room in rooms.items()}
    for unit in units:
        for pod in unit.pods:
            if pod.node in left:
                left[pod.node].update(pod.requests)
    return left


def _assign(
    members: Sequence[GangMember],
    rooms: Mapping[str, NodeRoom],
    units: Iterable[VictimUnit],
    prefer: Sequence[str] = (),
) -> tuple[str, ...] | None:
    """A node for each member in the room ``units`` leave: its preferred node if it fits
    there, else the first of its nodes by name that has room; None if one fits nowhere."""
    left = _left(rooms, units)
    out: list[str] = []
    for i, member in enumerate(members):
        order = ([prefer[i]] if i < len(prefer) else []) + sorted(member.nodes)
        node = next(
            (n for n in order if n in left and not shortfall(member.pod.requests, left[n])), None
        )
        if node is None:
            return None
        left[node].subtract(member.pod.requests)
        out.append(node)
    return tuple(out)


def _grow(
    members: Sequence[GangMember],
    rooms: Mapping[str, NodeRoom],
    candidates: Mapping[str, list[VictimUnit]],
    set_ok: SetTest,
    now_s: float,
) -> tuple[list[VictimUnit], list[str]] | None:
    """Member by member, the node where making room costs least (module docstring)."""
    chosen: list[VictimUnit] = []
    taken: set[tuple[str, ...]] = set()
    left = _left(rooms, ())
    nodes: list[str] = []
    for member in members:
        best: tuple[tuple[float, int, str], tuple[VictimUnit, ...]] | None = None
        for name in sorted(n for n in member.nodes if n in left):
            extra: tuple[VictimUnit, ...] = ()
            short = shortfall(member.pod.requests, left[name])
            if short:
                spare = [u for u in candidates.get(name, ()) if _uids(u) not in taken]
                found = minimal_units(name, spare, short, now_s)
                if not found or not set_ok((*chosen, *found)):
                    continue
                extra = found
            lost = sum(u.work_lost(now_s) for u in extra)
            key = (lost, sum(len(u.pods) for u in extra), name)
            if best is None or key < best[0]:
                best = (key, extra)
        if best is None:
            return None
        (_, _, name), extra = best
        chosen.extend(extra)
        taken.update(_uids(u) for u in extra)
        for pod in (p for u in extra for p in u.pods if p.node in left):
            left[pod.node].update(pod.requests)
        left[name].subtract(member.pod.requests)
        nodes.append(name)
    return chosen, nodes


def _plan_gang(
    preemptor: GangPreemptor,
    rooms: Mapping[str, NodeRoom],
    reason: PreemptionReason,
    unit_ok: UnitTest,
    set_ok: SetTest,
    rules: PreemptionRules,
    now_s: float,
    gang_pods: GangPods,
    eligible: Mapping[str, bool] | None,
) -> GangPlan | None:
    members = preemptor.members
    if not members or preemptor.never or preemptor.waiting_s < rules.trigger_delay_s:
        return None
    if _assign(members, rooms, ()) is not None:
        return None  # it fits whole without anyone's loss
    if eligible is None:
        eligible = victims_allowed(list(rooms.values()), gang_pods, rules, now_s)
    candidates = {
        name: [u for u in units_on(name, room.running, gang_pods, eligible) if unit_ok(u)]
        for name, room in rooms.items()
    }
    every = {_uids(u): u for units in candidates.values() for u in units}
    if _assign(members, rooms, every.values()) is None:
        return None  # not even taking back every candidate makes room
    grown = _grow(members, rooms, candidates, set_ok, now_s)
    if grown is None:
        return None
    chosen, nodes = grown
    for unit in sorted(chosen, key=lambda u: u.cost_key(now_s), reverse=True):
        rest = [u for u in chosen if u is not unit]
        placed = _assign(members, rooms, rest, nodes) if rest and set_ok(tuple(rest)) else None
        if placed is not None:
            chosen, nodes = rest, list(placed)
    if not chosen or not set_ok(tuple(chosen)):
        return None
    ordered = sorted(chosen, key=lambda u: u.cost_key(now_s))
    return GangPlan(
        preemptor.gang,
        tuple((m.pod.uid, node) for m, node in zip(members, nodes, strict=True)),
        tuple(p for u in ordered for p in u.pods),
        reason,
        sum(u.work_lost(now_s) for u in ordered),
    )


def plan_gang_reclaim(
    preemptor: GangPreemptor,
    rooms: Mapping[str, NodeRoom],
    shares: TeamShares,
    rules: PreemptionRules,
    now_s: float,
    gang_pods: GangPods | None = None,
    eligible: Mapping[str, bool] | None = None,
) -> GangPlan | None:
    """The gang's team, below its entitlement, takes back from teams above theirs as one
    preemption of all the gang's GPUs (``fairness.reclaim_allowed``)."""
    team, gpus = preemptor.namespace, preemptor.gpus()
    if gpus <= 0 or not shares.below_entitlement(team):
        return None
    mine = shares.share(team, gpus)
    # A team left below the gang's final share by one unit alone is below it after any
    # set with that unit (a victim team only loses more): such units are never offered.
    teams = {p.namespace for room in rooms.values() for p in room.running} - {team}
    above = {t for t in teams if shares.above_entitlement(t) and shares.share(t) >= mine - 1e-12}
    if not above:
        return None

    def unit_ok(unit: VictimUnit) -> bool:
        return unit.namespace in above and (
            shares.share(unit.namespace, -float(unit.gpus())) >= mine - 1e-12
        )

    def set_ok(units: tuple[VictimUnit, ...]) -> bool:
        taken = gpus_by_team(units)
        return reclaim_allowed(shares, team, gpus, taken)

    return _plan_gang(
        preemptor,
        rooms,
        PreemptionReason.RECLAIM,
        unit_ok,
        set_ok,
        rules,
        now_s,
        gang_pods or {},
        eligible,
    )


def plan_gang_priority(
    preemptor: GangPreemptor,
    rooms: Mapping[str, NodeRoom],
    rules: PreemptionRules,
    now_s: float,
    gang_pods: GangPods | None = None,
    eligible: Mapping[str, bool] | None = None,
) -> GangPlan | None:
    """The gang takes the place of units of lower priority than every one of its members
    (only opted-in victims)."""
    mine = preemptor.priority
    if not any(p.priority < mine for room in rooms.values() for p in room.running):
        return None
    return _plan_gang(
        preemptor,
        rooms,
        PreemptionReason.PRIORITY,
        lambda u: u.priority < mine,
        lambda _: True,
        rules,
        now_s,
        gang_pods or {},
        eligible,
    )
