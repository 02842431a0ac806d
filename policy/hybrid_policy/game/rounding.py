"""From a fractional equilibrium to whole pods on whole nodes, then a work-conserving fill.

Each namespace gets a credit: the dominant share the equilibrium gives it plus its deficit
carried over from earlier passes. Pods are placed one at a time: the namespace owed the
most (credit minus what it was given so far) goes next, with the earliest-queued of its
classes that the equilibrium still gives at least half a pod (else its earliest-queued
class), and the head pod of that class (queue order within a class) goes to
the feasible node where the equilibrium put most of that class's remaining mass, else to
the best-scored feasible node. Every placement is re-evaluated through the cycle's Filter
against the reservations made so far, so no capacity is ever exceeded. When every credit
is spent the same loop keeps going (least over-served namespace first) until no pending
pod fits anywhere: the pass is work conserving. A class whose head fits nowhere is
rejected whole, since its later pods have identical constraints and reservations only
take capacity away.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.snapshot import FloatArray
from hybrid_policy.game.problem import ContentionProblem

_MASS_EPSILON = 1e-6


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
    class_gap = problem.class_amounts(allocation)
    slot_mass = allocation.copy()
    slots_of_class = [np.flatnonzero(problem.slot_class == c) for c in range(len(problem.classes))]
    next_pod = [0] * len(problem.classes)
    live: list[list[int]] = [[] for _ in problem.namespaces]
    for c in range(len(problem.classes)):
        live[int(problem.class_namespace[c])].append(c)
    nodes = len(cycle.snapshot)
    while any(live):
        owed = [
            (credit[i] - granted[i], -granted[i] / problem.weights[i], -i)
            for i in range(len(live))
            if live[i]
        ]
        ns = -max(owed)[2]
        due = [k for k in live[ns] if class_gap[k] >= 0.5]
        c = min(
            due or live[ns], key=lambda k: queue_position[problem.classes[k].pods[next_pod[k]].uid]
        )
        pod_class = problem.classes[c]
        pod = pod_class.pods[next_pod[c]]
        table = cycle.evaluate(pod)
        if not isinstance(table, ScoreTable):
            for rest in pod_class.pods[next_pod[c] :]:
                cycle.reject(rest, table)
            live[ns].remove(c)
            continue
        feasible = np.zeros(nodes, dtype=bool)
        feasible[table.candidates] = True
        slots = slots_of_class[c]
        usable = slots[feasible[problem.node_rows[problem.slot_node[slots]]]]
        usable = usable[slot_mass[usable] > _MASS_EPSILON]
        if usable.size:
            slot = int(usable[np.argmax(slot_mass[usable])])
            node = int(problem.node_rows[problem.slot_node[slot]])
            slot_mass[slot] -= 1.0
        else:
            node = table.best(cycle.rng)
        cycle.commit(pod, node, table)
        granted[ns] += problem.class_pod_share[c]
        class_gap[c] -= 1.0
        next_pod[c] += 1
        if next_pod[c] == len(pod_class.pods):
            live[ns].remove(c)
    return granted


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
