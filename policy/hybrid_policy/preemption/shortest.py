"""Shortest first: a short pod that waits takes the place of a running pod predicted to
run much longer (shortest remaining time first, at most ``max_preemptions`` a pod; with
``max_lost_s`` set, only a victim that checkpointed at most that long ago).

A waiting pod of predicted run time ``d`` may stop a unit only when the unit's predicted
time left is at least ``ratio * d``: the swap finishes the short pod about its wait
earlier and the long one about ``d`` plus the work it loses plus the restart later. When
the phase has a wait estimate that counts the queue ahead (``queue_wait``), the saved
wait must also exceed, by ``margin``, the victims' delay. As for ``shorten``, only units
of the preemptor's own team, or of teams that still hold at least its team's share
afterwards, may be taken, so a take from another team raises the teams' sorted shares in
the leximin order (``fairness``) and cannot be answered at once; within a team, the
victim is predicted to run at least ``ratio`` times longer than the preemptor, so with
``ratio > 1`` the preemptor, predicted shorter, is never the victim's victim right away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hybrid_policy.preemption.fairness import TeamShares, fair_to_take
from hybrid_policy.preemption.model import (
    PreemptionPlan,
    PreemptionReason,
    PreemptionRules,
    RunningPod,
)
from hybrid_policy.preemption.planner import (
    NodeRoom,
    Preemptor,
    Remaining,
    free_after,
    plan_by_tests,
)
from hybrid_policy.preemption.victims import VictimUnit, gpus_by_team
from hybrid_policy.resources import GPU


@dataclass(frozen=True, slots=True)
class ShortestCosts:
    """What ``plan_shortest`` weighs: the preemptor's predicted run time, each running
    pod's predicted time left, how many times longer a victim must be predicted to run,
    and (when the wait is known, ``wait_s``) the restart a victim pays and the margin by
    which the saved wait must exceed the victims' delay."""

    duration_s: float
    remaining: Remaining
    ratio: float = 4.0
    wait_s: float | None = None
    restart_s: float = 60.0
    margin: float = 1.0
    #: A victim may have run at most this long since its last checkpoint (the work it
    #: loses); None: any.
    max_lost_s: float | None = None


def unit_remaining(unit: VictimUnit, remaining: Remaining) -> float:
    """A unit's predicted time left: its longest member's (a gang ends with its last)."""
    return max(remaining(p) for p in unit.pods)


def queue_wait(
    rooms: Sequence[NodeRoom],
    requests: Mapping[str, int],
    remaining: Remaining,
    work_ahead_gpu_s: float,
    total_gpus: float,
) -> float:
    """A waiting pod's predicted wait counting the queue ahead of it: until enough
    running pods end on its best node, plus the GPU-seconds of predicted work queued
    before it spread over the cluster's GPUs."""
    running = min((free_after(room, requests, remaining) for room in rooms), default=0.0)
    ahead = work_ahead_gpu_s / total_gpus if total_gpus > 0 else 0.0
    return running + ahead


def plan_shortest(
    preemptor: Preemptor,
    rooms: Sequence[NodeRoom],
    shares: TeamShares,
    rules: PreemptionRules,
    now_s: float,
    costs: ShortestCosts,
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]] | None = None,
    eligible: Mapping[str, bool] | None = None,
) -> PreemptionPlan | None:
    """Stop the cheapest units predicted to run at least ``ratio`` times longer than the
    preemptor, when the teams' shares allow it and the saved wait pays for the delay."""
    if not rooms or costs.duration_s <= 0:
        return None
    longest = costs.ratio * costs.duration_s
    team = preemptor.pod.namespace
    gpus = float(preemptor.pod.requests.get(GPU, 0))

    def unit_ok(unit: VictimUnit) -> bool:
        if costs.max_lost_s is not None and unit.lost_s(now_s) > costs.max_lost_s:
            return False
        return unit_remaining(unit, costs.remaining) >= longest

    def set_ok(units: tuple[VictimUnit, ...]) -> bool:
        if costs.wait_s is not None:
            delay = sum(costs.duration_s + u.lost_s(now_s) + costs.restart_s for u in units)
            if costs.wait_s <= costs.margin * delay:
                return False
        taken = gpus_by_team(units)
        return fair_to_take(shares, team, gpus, taken)

    return plan_by_tests(
        preemptor,
        rooms,
        PreemptionReason.SHORTEST,
        unit_ok,
        set_ok,
        rules,
        now_s,
        gang_pods or {},
        eligible,
    )
