"""From a fractional equilibrium to whole units on whole nodes, then a work-conserving fill.

Each namespace gets a credit: the dominant share the equilibrium gives it plus its deficit
carried over from earlier passes. Units (a single pod, or all the pods of a gang) are
placed one at a time. Each namespace's next unit is the head pod of the earliest-queued
of its classes that the equilibrium still gives at least half a pod (else of its
earliest-queued class), with the whole gang when that pod belongs to one; the namespace
whose credit left, minus half of its next unit's share, is largest goes next (the
Sainte-Lague rule of apportionment: a unit goes where it overdraws a credit least; ties
go to the namespace holding the smaller weighted share). A pod goes to the feasible node
where the equilibrium put most of its class's remaining mass, else to the best-scored
feasible node; a gang's pods go one after the other the same way, or, if one fits
nowhere, none of them (:func:`~hybrid_policy.framework.gangs.try_unit`): the namespace is
given the whole gang or none of it. Every placement is re-evaluated through the cycle's
Filter against the reservations made so far, so no capacity is ever exceeded. When every
credit is spent the same loop keeps going until no pending pod fits anywhere: the pass is
work conserving. A class whose head single pod fits nowhere is rejected whole, since its
later pods have identical constraints and reservations only take capacity away.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.gangs import Unit, gang_status, try_unit
from hybrid_policy.framework.snapshot import FloatArray
from hybrid_policy.framework.status import Status
from hybrid_policy.game.problem import ContentionProblem

_MASS_EPSILON = 1e-6
#: Owed shares are compared to this many decimals, so that solver noise does not decide.
_DIGITS = 6


class _Rounding:
    """The state of one rounding: slot mass left, pods settled, classes still live."""

    def __init__(
        self,
        cycle: BatchCycle,
        problem: ContentionProblem,
        allocation: FloatArray,
        position: Mapping[str, int],
    ) -> None:
        self.cycle, self.problem, self.position = cycle, problem, position
        self.class_gap = problem.class_amounts(allocation)
        self.slot_mass = allocation.copy()
        self.slots_of_class = [
            np.flatnonzero(problem.slot_class == c) for c in range(len(problem.classes))
        ]
        self.class_of = {p.uid: c for c, pc in enumerate(problem.classes) for p in pc.pods}
        self.pods = {p.uid: p for pc in problem.classes for p in pc.pods}
        self.next_pod = [0] * len(problem.classes)
        self.settled: set[str] = set()
        self.units: dict[str, Unit] = {}
        for unit in _gang_units(problem, cycle):
            for pod in unit:
                self.units[pod.uid] = unit

    def head(self, c: int) -> PendingPod | None:
        """The first pod of class ``c`` not settled yet (None when all are)."""
        pods = self.problem.classes[c].pods
        while self.next_pod[c] < len(pods) and pods[self.next_pod[c]].uid in self.settled:
            self.next_pod[c] += 1
        return pods[self.next_pod[c]] if self.next_pod[c] < len(pods) else None

    def choose(self, pod: PendingPod, table: ScoreTable) -> int:
        """The feasible node where the equilibrium put most of the pod's class's remaining
        mass (that mass is then used up), else the best-scored one."""
        problem = self.problem
        c = self.class_of[pod.uid]
        feasible = np.zeros(len(self.cycle.snapshot), dtype=bool)
        feasible[table.candidates] = True
        slots = self.slots_of_class[c]
        usable = slots[feasible[problem.node_rows[problem.slot_node[slots]]]]
        usable = usable[self.slot_mass[usable] > _MASS_EPSILON]
        if not usable.size:
            return table.best(self.cycle.rng)
        slot = int(usable[np.argmax(self.slot_mass[usable])])
        self.slot_mass[slot] -= 1.0
        return int(problem.node_rows[problem.slot_node[slot]])

    def place(self, pod: PendingPod) -> tuple[PendingPod, ...]:
        """Place ``pod``, or its whole gang; the pods placed (none when it did not fit,
        and then they are rejected)."""
        self.settled.add(pod.uid)
        unit = self.units.get(pod.uid)
        if unit is None:
            table = self.cycle.evaluate(pod)
            if not isinstance(table, ScoreTable):
                self.reject_class(self.class_of[pod.uid], pod, table)
                return ()
            self.cycle.commit(pod, self.choose(pod, table), table)
            return (pod,)
        self.settled.update(p.uid for p in unit)
        mass = self.slot_mass.copy()
        scored = self.problem.classes[self.class_of[pod.uid]].table
        fitted = try_unit(unit, self.cycle, self.choose, scored)
        if fitted is None:
            return unit
        self.slot_mass = mass
        head = unit[0]
        assert head.gang_key is not None
        running = self.cycle.snapshot.gang_members[head.gang_key]
        for member in unit:
            self.cycle.reject(member, gang_status(member, running + fitted))
        return ()

    def reject_class(self, c: int, pod: PendingPod, status: Status) -> None:
        """``pod`` fits nowhere: neither does any later pod of its class (a gang among
        them is rejected whole)."""
        self.cycle.reject(pod, status)
        for rest in self.problem.classes[c].pods[self.next_pod[c] :]:
            if rest.uid in self.settled:
                continue
            for member in self.units.get(rest.uid, (rest,)):
                if member.uid not in self.settled:
                    self.settled.add(member.uid)
                    self.cycle.reject(member, status)


def _gang_units(problem: ContentionProblem, cycle: BatchCycle) -> list[Unit]:
    """The gangs of the problem's pods still short of their ``min_member``, as units in
    queue order of their first pods."""
    members: dict[tuple[str, str], list[PendingPod]] = {}
    pods = sorted(
        (p for pc in problem.classes for p in pc.pods),
        key=cycle.profile.queue_sort.sort_key,
    )
    for pod in pods:
        key, gang = pod.gang_key, pod.gang
        if key is None or gang is None or not cycle.profile.gang_aware:
            continue
        if cycle.snapshot.gang_members[key] >= gang.min_member:
            continue
        members.setdefault(key, []).append(pod)
    return [tuple(m) for m in members.values()]


def settle(
    cycle: BatchCycle,
    problem: ContentionProblem,
    allocation: FloatArray,
    deficit_share: Mapping[str, float],
    queue_position: Mapping[str, int],
) -> FloatArray:
    """Commit or reject every pod of ``problem``; returns the dominant share given per
    namespace (in the order of ``problem.namespaces``). ``queue_position`` maps pod UIDs to
    their place in the batch."""
    planned = problem.served_share(allocation)
    credit = planned + np.array([deficit_share.get(ns, 0.0) for ns in problem.namespaces])
    granted = np.zeros(len(problem.namespaces))
    rounding = _Rounding(cycle, problem, allocation, queue_position)
    live: list[list[int]] = [[] for _ in problem.namespaces]
    for c in range(len(problem.classes)):
        live[int(problem.class_namespace[c])].append(c)

    def owed(ns: int) -> tuple[float, float, int, str] | None:
        turn = _turn(rounding, live, ns)
        if turn is None:
            return None
        _, pod, share = turn
        return (
            round(credit[ns] - granted[ns] - share / 2, _DIGITS),
            -(problem.held_share[ns] + granted[ns]) / problem.weights[ns],
            -ns,
            pod.uid,
        )

    # Placing (or rejecting) a namespace's unit changes only that namespace's next turn.
    turns = {ns: t for ns in range(len(live)) if (t := owed(ns)) is not None}
    while turns:
        best = max(turns.values())
        ns = -best[2]
        for placed in rounding.place(rounding.pods[best[3]]):
            k = rounding.class_of[placed.uid]
            granted[int(problem.class_namespace[k])] += problem.class_pod_share[k]
            rounding.class_gap[k] -= 1.0
        turn = owed(ns)
        if turn is None:
            del turns[ns]
        else:
            turns[ns] = turn
    return granted


def _turn(
    rounding: _Rounding, live: list[list[int]], ns: int
) -> tuple[int, PendingPod, float] | None:
    """Namespace ``ns``'s next pod (the head of its earliest-queued class that the
    equilibrium still gives at least half a pod, else of its earliest-queued class) and the
    dominant share of its unit (the whole gang for a gang's pod); None when it has none."""
    heads = {c: pod for c in live[ns] if (pod := rounding.head(c)) is not None}
    live[ns] = list(heads)
    if not heads:
        return None
    due = [k for k in heads if rounding.class_gap[k] >= 0.5]
    c = min(due or heads, key=lambda k: rounding.position[heads[k].uid])
    pod = heads[c]
    share = rounding.problem.class_pod_share
    unit = rounding.units.get(pod.uid, (pod,))
    return ns, pod, float(sum(share[rounding.class_of[p.uid]] for p in unit))


def carry_deficits(
    problem: ContentionProblem,
    allocation: FloatArray,
    granted: FloatArray,
    deficit_share: dict[str, float],
) -> None:
    """Update deficit counters: equilibrium share minus share given, kept within one pod.

    The bound makes the counter a tie-breaker for who gets the next whole pod, not a debt
    that could starve anyone; held shares already carry the long-run history into the
    next pass's program.
    """
    planned = problem.served_share(allocation)
    for i, ns in enumerate(problem.namespaces):
        mine = problem.class_namespace == i
        bound = float(problem.class_pod_share[mine].max()) if mine.any() else 0.0
        value = deficit_share.get(ns, 0.0) + planned[i] - granted[i]
        deficit_share[ns] = float(np.clip(value, -bound, bound))
