"""The greedy weighted fallback: whole pods, the namespace furthest below its weight first.

Used when the solver fails, returns a non-optimal status or runs over its time budget. It
keeps the game's weights: repeatedly, the namespace with the smallest weighted dominant
share (held plus given this pass, over its weight) gets one pod, of its first class in
queue order that still fits on one of its candidate slots, on the best-scored such slot.
This is weighted DRF over the same slots and capacities the program sees, so the fallback
is fair in the same sense, only not an equilibrium of the full game.
"""

from __future__ import annotations

import heapq

import numpy as np

from hybrid_policy.framework.snapshot import FloatArray
from hybrid_policy.game.problem import ContentionProblem

_FIT_SLACK = 1e-9


def greedy_allocation(problem: ContentionProblem) -> FloatArray:
    """Whole pods per slot, by weighted dominant share; never exceeds any capacity."""
    allocation = np.zeros(problem.slot_class.size)
    free = problem.node_free_fraction.copy()
    left = problem.class_demand_pods.copy()
    share = problem.held_share.copy()
    slots_of_class = [np.flatnonzero(problem.slot_class == c) for c in range(len(problem.classes))]
    classes_of_ns = [
        np.flatnonzero(problem.class_namespace == i) for i in range(len(problem.namespaces))
    ]
    heap = [(share[i] / problem.weights[i], i) for i in range(len(problem.namespaces))]
    heapq.heapify(heap)
    while heap:
        _, ns = heapq.heappop(heap)
        slot = _next_slot(problem, allocation, free, left, slots_of_class, classes_of_ns[ns])
        if slot is None:
            continue
        c = int(problem.slot_class[slot])
        allocation[slot] += 1.0
        left[c] -= 1.0
        free[problem.slot_node[slot]] -= problem.slot_request_fraction[slot]
        share[ns] += problem.class_pod_share[c]
        heapq.heappush(heap, (share[ns] / problem.weights[ns], ns))
    return allocation


def _next_slot(
    problem: ContentionProblem,
    allocation: FloatArray,
    free: FloatArray,
    left: FloatArray,
    slots_of_class: list[np.ndarray],
    classes: np.ndarray,
) -> int | None:
    """The best-scored slot of the namespace's first class that can take one more pod."""
    for c in classes:
        if left[c] < 1.0:
            continue
        slots = slots_of_class[int(c)]
        fits = np.all(
            problem.slot_request_fraction[slots] <= free[problem.slot_node[slots]] + _FIT_SLACK,
            axis=1,
        ) & (allocation[slots] + 1.0 <= problem.slot_fit_pods[slots] + _FIT_SLACK)
        if fits.any():
            usable = slots[fits]
            return int(usable[np.argmax(problem.slot_score[usable])])
    return None
