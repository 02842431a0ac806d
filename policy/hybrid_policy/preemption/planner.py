"""A preemptor's plan: on which node, taking back which units, for which reason.

Each reason has its own test of who may be a victim; all share the search: on every node
the caller found feasible for the preemptor but for room, the cheapest minimal set of
eligible units that makes room (``victims.minimal_units``), then the node whose set loses
the least work (fewest victims, then the node's name, on ties). Every choice is
deterministic: the same state gives the same plan."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from hybrid_policy.domain import PendingPod
from hybrid_policy.preemption.fairness import TeamShares, reclaim_allowed
from hybrid_policy.preemption.model import (
    PreemptionPlan,
    PreemptionReason,
    PreemptionRules,
    RunningPod,
)
from hybrid_policy.preemption.victims import (
    VictimUnit,
    gpus_by_team,
    may_be_victim,
    minimal_units,
    shortfall,
    units_on,
)
from hybrid_policy.resources import GPU


@dataclass(frozen=True, slots=True)
class NodeRoom:
    """A node the preemptor could use but for room: what is free there and who runs."""

    name: str
    free: Mapping[str, int]
    running: tuple[RunningPod, ...]
    #: The victim units there, when the caller worked them out once for several plans
    #: (with the same ``eligible`` and gangs it passes); None: worked out on each use.
    units: tuple[VictimUnit, ...] | None = None
    #: What :func:`plan_by_tests` worked out here for earlier preemptors of the same pass
    #: (the room never changes): the shortfall by requests, the units a reason's test
    #: keeps by the test's key.
    shorts: dict[tuple[object, ...], dict[str, int]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    kept: dict[Hashable, list[VictimUnit]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )


@dataclass(frozen=True, slots=True)
class Preemptor:
    """A pending pod that may preempt: how long it has waited, and whether its
    ``preemptionPolicy`` is ``Never`` (it then never preempts, as in kube-scheduler)."""

    pod: PendingPod
    waiting_s: float
    never: bool = False


Remaining = Callable[[RunningPod], float]


@dataclass(frozen=True, slots=True)
class ShortenCosts:
    """What ``plan_shorten`` weighs: the preemptor's predicted run time, each running
    pod's predicted time left, the restart a victim pays, and the margin by which the
    saved wait must exceed the victims' delay."""

    duration_s: float
    remaining: Remaining
    restart_s: float = 60.0
    margin: float = 1.0
    #: The preemptor's predicted wait when the caller knows it (counting the queue ahead);
    #: None: until enough running pods on some node are predicted to end.
    wait_s: float | None = None


UnitTest = Callable[[VictimUnit], bool]
SetTest = Callable[[tuple[VictimUnit, ...]], bool]


def plan_by_tests(
    preemptor: Preemptor,
    rooms: Sequence[NodeRoom],
    reason: PreemptionReason,
    unit_ok: UnitTest,
    set_ok: SetTest,
    rules: PreemptionRules,
    now_s: float,
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]],
    eligible: Mapping[str, bool] | None = None,
    unit_key: Hashable | None = None,
) -> PreemptionPlan | None:
    """The search every reason shares, a reason being defined by its test of a unit
    (``unit_ok``) and of a chosen set (``set_ok``). ``unit_key``, when given, names what
    ``unit_ok`` depends on: two tests with equal keys keep the same units, and a room
    remembers which."""
    if preemptor.never or preemptor.waiting_s < rules.trigger_delay_s:
        return None
    searches: dict[Hashable, _Space | None] | None = getattr(rooms, "searches", None)
    if unit_key is None or any(r.units is None for r in rooms):
        searches = None  # what the test keeps is not named, or depends on ``eligible``
    memo_key = (preemptor.pod.requests_key, unit_key)
    if searches is not None and memo_key in searches:
        space = searches[memo_key]
    else:
        space = _space(preemptor.pod, rooms, unit_ok, unit_key, now_s, gang_pods, eligible, rules)
        if searches is not None:
            searches[memo_key] = space
    if space is None:
        return None  # it fits somewhere without anyone's loss
    best: tuple[tuple[float, int, str], PreemptionPlan] | None = None
    for least, room, short, units in space:
        if best is not None and least > best[0][0]:
            break
        chosen = minimal_units(room.name, units, short, now_s)
        if not chosen or not set_ok(chosen):
            continue
        lost = sum(u.cost_key(now_s)[0] for u in chosen)
        victims = tuple(p for u in chosen for p in u.pods)
        key = (lost, len(victims), room.name)
        if best is None or key < best[0]:
            plan = PreemptionPlan(preemptor.pod.uid, room.name, victims, reason, lost)
            best = (key, plan)
    return None if best is None else best[1]


#: The rooms a search weighs, cheapest first by the least a plan there loses, with the
#: shortfall and the units the reason's test keeps there.
_Space = list[tuple[float, NodeRoom, dict[str, int], list[VictimUnit]]]


def _space(
    pod: PendingPod,
    rooms: Sequence[NodeRoom],
    unit_ok: UnitTest,
    unit_key: Hashable | None,
    now_s: float,
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]],
    eligible: Mapping[str, bool] | None,
    rules: PreemptionRules,
) -> _Space | None:
    """What :func:`plan_by_tests` searches for ``pod``: None when it fits in some room
    already. A caller that plans for several pods may keep it (``rooms.searches``) for
    pods of the same requests and a test of the same key, until the rooms change."""
    shorts = [_shortfall(pod, room) for room in rooms]
    if not all(shorts):
        return None
    if eligible is None:
        eligible = victims_allowed(rooms, gang_pods, rules, now_s)
    candidates: _Space = []
    for room, short in zip(rooms, shorts, strict=True):
        here = room.units
        if here is None:
            here = tuple(units_on(room.name, room.running, gang_pods, eligible))
            units = [u for u in here if unit_ok(u)]
        elif unit_key is None:
            units = [u for u in here if unit_ok(u)]
        else:
            known = room.kept.get(unit_key)
            if known is None:
                known = room.kept[unit_key] = [u for u in here if unit_ok(u)]
            units = known
        if units:
            # a room's plan loses at least its cheapest unit's work (``short`` is not
            # empty, so a plan takes at least one unit, and no unit loses less than 0)
            candidates.append((min(u.cost_key(now_s)[0] for u in units), room, short, units))
    # Cheapest rooms first, so that the others can be left out by that bound alone; the
    # plan is the same as in any order (its key names the node, so no two rooms tie).
    candidates.sort(key=lambda c: c[0])
    return candidates


def _shortfall(pod: PendingPod, room: NodeRoom) -> dict[str, int]:
    """:func:`shortfall` of ``pod`` on ``room``, remembered by the room per requests."""
    key = pod.requests_key
    known = room.shorts.get(key)
    if known is None:
        known = room.shorts[key] = shortfall(pod.requests, room.free)
    return known


def victims_allowed(
    rooms: Sequence[NodeRoom],
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]],
    rules: PreemptionRules,
    now_s: float,
) -> dict[str, bool]:
    """Whether each running pod in ``rooms`` or in a gang may be a victim, by uid (computed
    once per pass by a caller that plans for several pods)."""
    everyone = [p for g in gang_pods.values() for p in g] + [p for r in rooms for p in r.running]
    return {p.uid: may_be_victim(p, now_s, rules) for p in everyone}


def plan_reclaim(
    preemptor: Preemptor,
    rooms: Sequence[NodeRoom],
    shares: TeamShares,
    rules: PreemptionRules,
    now_s: float,
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]] | None = None,
    eligible: Mapping[str, bool] | None = None,
) -> PreemptionPlan | None:
    """A team below its entitlement takes back from teams above theirs, never ending
    above any of them (``fairness.reclaim_allowed``)."""
    team = preemptor.pod.namespace
    gpus = float(preemptor.pod.requests.get(GPU, 0))
    if gpus <= 0 or not shares.below_entitlement(team):
        return None
    above = {
        ns
        for room in rooms
        for ns in {p.namespace for p in room.running}
        if ns != team and shares.above_entitlement(ns)
    }
    if not above:
        return None

    def unit_ok(unit: VictimUnit) -> bool:
        return unit.namespace in above

    def set_ok(units: tuple[VictimUnit, ...]) -> bool:
        taken = gpus_by_team(units)
        return reclaim_allowed(shares, team, gpus, taken)

    return plan_by_tests(
        preemptor,
        rooms,
        PreemptionReason.RECLAIM,
        unit_ok,
        set_ok,
        rules,
        now_s,
        gang_pods or {},
        eligible,
        unit_key=(PreemptionReason.RECLAIM, frozenset(above)),
    )


def plan_priority(
    preemptor: Preemptor,
    rooms: Sequence[NodeRoom],
    rules: PreemptionRules,
    now_s: float,
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]] | None = None,
    eligible: Mapping[str, bool] | None = None,
) -> PreemptionPlan | None:
    """A pod of higher priority takes the place of lower-priority pods, as kube-scheduler
    preempts (only opted-in victims here)."""
    mine = preemptor.pod.priority
    if not any(p.priority < mine for room in rooms for p in room.running):
        return None

    def unit_ok(unit: VictimUnit) -> bool:
        return unit.priority < mine

    return plan_by_tests(
        preemptor,
        rooms,
        PreemptionReason.PRIORITY,
        unit_ok,
        lambda _: True,
        rules,
        now_s,
        gang_pods or {},
        eligible,
        unit_key=(PreemptionReason.PRIORITY, mine),
    )


def plan_defragment(
    preemptor: Preemptor,
    reserved: NodeRoom,
    overdue_s: float,
    rules: PreemptionRules,
    now_s: float,
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]] | None = None,
) -> PreemptionPlan | None:
    """A pod whose reservation of ``reserved`` is overdue by more than the threshold
    takes the cheapest set of opted-in pods off that node."""
    if overdue_s <= rules.overdue_s:
        return None
    return plan_by_tests(
        preemptor,
        [reserved],
        PreemptionReason.DEFRAGMENT,
        lambda u: u.priority <= preemptor.pod.priority,
        lambda _: True,
        rules,
        now_s,
        gang_pods or {},
    )


def free_after(room: NodeRoom, requests: Mapping[str, int], remaining: Remaining) -> float:
    """Seconds until enough of ``room``'s running pods are predicted to end for
    ``requests`` to fit there (infinite if they never do)."""
    short = shortfall(requests, room.free)
    if not short:
        return 0.0
    freed: dict[str, int] = {}
    for pod in sorted(room.running, key=remaining):
        for r, q in pod.requests.items():
            freed[r] = freed.get(r, 0) + q
        if all(freed.get(r, 0) >= q for r, q in short.items()):
            return remaining(pod)
    return float("inf")


def plan_shorten(
    preemptor: Preemptor,
    rooms: Sequence[NodeRoom],
    shares: TeamShares,
    rules: PreemptionRules,
    now_s: float,
    costs: ShortenCosts,
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]] | None = None,
    eligible: Mapping[str, bool] | None = None,
) -> PreemptionPlan | None:
    """Stop pods whose delay costs less than the preemptor's predicted wait: the
    preemptor waits ``min over nodes of free_after``; each victim unit is delayed about the
    preemptor's run time plus the work it loses plus the restart. Only pods of its own
    team or of teams that still hold at least its share afterwards may be taken."""
    if not rooms:
        return None
    wait = costs.wait_s
    if wait is None:
        wait = min(free_after(room, preemptor.pod.requests, costs.remaining) for room in rooms)
    if wait <= costs.duration_s:
        return None  # not even one victim's delay would pay for it
    team = preemptor.pod.namespace
    gpus = float(preemptor.pod.requests.get(GPU, 0))

    def set_ok(units: tuple[VictimUnit, ...]) -> bool:
        delay = sum(costs.duration_s + u.lost_s(now_s) + costs.restart_s for u in units)
        if wait <= costs.margin * delay:
            return False
        taken = gpus_by_team(u for u in units if u.namespace != team)
        final = shares.after({team: gpus, **{t: -g for t, g in taken.items()}})
        return all(final.share(team) <= final.share(t) + 1e-12 for t in taken)

    return plan_by_tests(
        preemptor,
        rooms,
        PreemptionReason.SHORTEN,
        lambda _: True,
        set_ok,
        rules,
        now_s,
        gang_pods or {},
        eligible,
    )
