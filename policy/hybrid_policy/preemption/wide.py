"""Room for a wide pod: a waiting pod of at least ``wide_gpus`` GPUs takes the place of
narrower pods that checkpointed lately.

At Heavy load the wait is in the wide pods (``docs/preemption.md``, "Where the time
goes"): a narrow pod fits into whatever frees and starts within minutes, a 4- or 8-GPU pod
waits until enough of one node frees at once. So a narrow victim loses little by going
back to the queue (its work since the checkpoint, the restart, and a short wait), while
the wide pod may be spared a long one. A unit may be taken when it holds fewer GPUs than
the preemptor and, with ``max_lost_s`` set, checkpointed at most that long ago; the set
is taken when the preemptor's predicted wait (until enough running pods on some node are
predicted to end) exceeds, by ``margin``, the work the victims lose plus their restarts,
and only what the teams' shares allow (``fairness.fair_to_take``).
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
class WideCosts:
    """What ``plan_wide`` weighs: each running pod's predicted time left, the narrowest
    pod that counts as wide, the restart a victim pays, the margin, and the most work
    since its checkpoint a victim may lose (None: any)."""

    remaining: Remaining
    wide_gpus: int = 4
    restart_s: float = 60.0
    margin: float = 1.0
    max_lost_s: float | None = None


def plan_wide(
    preemptor: Preemptor,
    rooms: Sequence[NodeRoom],
    shares: TeamShares,
    rules: PreemptionRules,
    now_s: float,
    costs: WideCosts,
    gang_pods: Mapping[tuple[str, str], Sequence[RunningPod]] | None = None,
    eligible: Mapping[str, bool] | None = None,
) -> PreemptionPlan | None:
    """Stop the cheapest narrower units that make room for a wide pod whose predicted
    wait is longer than what they lose."""
    gpus = preemptor.pod.requests.get(GPU, 0)
    if gpus < costs.wide_gpus or not rooms:
        return None
    team = preemptor.pod.namespace
    waits: list[float] = []  # the predicted wait, worked out when a set is first weighed

    def wait() -> float:
        if not waits:
            waits.append(
                min(free_after(room, preemptor.pod.requests, costs.remaining) for room in rooms)
            )
        return waits[0]

    def unit_ok(unit: VictimUnit) -> bool:
        if costs.max_lost_s is not None and unit.lost_s(now_s) > costs.max_lost_s:
            return False
        return unit.gpus() < gpus

    def set_ok(units: tuple[VictimUnit, ...]) -> bool:
        delay = sum(u.lost_s(now_s) + costs.restart_s for u in units)
        if wait() <= costs.margin * delay:
            return False
        taken = gpus_by_team(units)
        return fair_to_take(shares, team, float(gpus), taken)

    return plan_by_tests(
        preemptor,
        rooms,
        PreemptionReason.WIDE,
        unit_ok,
        set_ok,
        rules,
        now_s,
        gang_pods or {},
        eligible,
        unit_key=(PreemptionReason.WIDE, gpus, costs.max_lost_s, now_s),
    )
