"""The greedy weighted fallback: whole units, the namespace furthest below its weight first.

Used when the solver fails, returns a non-optimal status or runs over its time budget. It
keeps the game's weights: repeatedly, the namespace with the smallest weighted dominant
share (held plus given this pass, over its weight) gets its next *unit* (a single pod, or
all the pods of a gang: :attr:`ContentionProblem.class_units`), of its first class in
queue order whose next unit still fits on its candidate slots, each pod on the
best-scored slot with room. A gang that does not fit whole gets nothing and is passed
over. This is weighted DRF over the same slots and capacities the program sees, so the
fallback is fair in the same sense, only not an equilibrium of the full game.
"""

from __future__ import annotations

import heapq

import numpy as np

from hybrid_policy.framework.snapshot import FloatArray
from hybrid_policy.game.problem import ContentionProblem

_FIT_SLACK = 1e-9


def greedy_allocation(problem: ContentionProblem) -> FloatArray:
    """Whole units per slot, by weighted dominant share; never exceeds any capacity."""
    allocation = np.zeros(problem.slot_class.size)
    free = problem.node_free_fraction.copy()
    next_unit = [0] * len(problem.classes)
    share = problem.held_share.copy()
    slots_of_class = [np.flatnonzero(problem.slot_class == c) for c in range(len(problem.classes))]
    classes_of_ns = [
        np.flatnonzero(problem.class_namespace == i) for i in range(len(problem.namespaces))
    ]
    heap = [(share[i] / problem.weights[i], i) for i in range(len(problem.namespaces))]
    heapq.heapify(heap)
    while heap:
        _, ns = heapq.heappop(heap)
        for c in classes_of_ns[ns]:
            slots = _next_unit(problem, allocation, free, next_unit, slots_of_class[int(c)], int(c))
            if slots is not None:
                break
        else:
            continue
        for slot in slots:
            allocation[slot] += 1.0
            free[problem.slot_node[slot]] -= problem.slot_request_fraction[slot]
            share[ns] += problem.class_pod_share[c]
        heapq.heappush(heap, (share[ns] / problem.weights[ns], ns))
    return allocation


def _next_unit(
    problem: ContentionProblem,
    allocation: FloatArray,
    free: FloatArray,
    next_unit: list[int],
    slots: np.ndarray,
    c: int,
) -> list[int] | None:
    """The slots of class ``c``'s next unit that fits whole (a gang that does not fit now
    never will in this pass: it is passed over); None when none does."""
    units = problem.units_of(c)
    while next_unit[c] < len(units):
        size = units[next_unit[c]]
        chosen = _fit(problem, allocation.copy(), free.copy(), slots, size)
        if chosen is not None:
            next_unit[c] += 1
            return chosen
        if size == 1:
            return None  # one pod of the class fits nowhere: neither does a gang of them
        next_unit[c] += 1
    return None


def _fit(
    problem: ContentionProblem,
    allocation: FloatArray,
    free: FloatArray,
    slots: np.ndarray,
    size: int,
) -> list[int] | None:
    """The best-scored slot with room for each of ``size`` pods, one after the other (on
    copies of ``allocation`` and ``free``); None when they do not all fit."""
    chosen: list[int] = []
    for _ in range(size):
        fits = np.all(
            problem.slot_request_fraction[slots] <= free[problem.slot_node[slots]] + _FIT_SLACK,
            axis=1,
        ) & (allocation[slots] + 1.0 <= problem.slot_fit_pods[slots] + _FIT_SLACK)
        if not fits.any():
            return None
        usable = slots[fits]
        slot = int(usable[np.argmax(problem.slot_score[usable])])
        chosen.append(slot)
        allocation[slot] += 1.0
        free[problem.slot_node[slot]] -= problem.slot_request_fraction[slot]
    return chosen
