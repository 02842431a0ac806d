"""The reasons that buy completion time, tried by the phase after reclaim and priority:
``defragment`` (a reservation overdue by more than ``overdue_s`` clears its node),
``wide`` (a wide pod takes the place of narrower pods that checkpointed lately, ``wide``),
``shorten`` with the wait counted through the queue (``wait=queue``), and ``shortest``
(a short pod takes the place of one predicted to run much longer, ``shortest``).

Each takes from another team only what leaves the preemptor's team at or below that
team's share (``fairness.fair_to_take``), so none of them can be answered at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from hybrid_policy.domain import PendingPod
from hybrid_policy.preemption.fairness import TeamShares, fair_to_take
from hybrid_policy.preemption.model import PreemptionPlan, PreemptionReason, RunningPod
from hybrid_policy.preemption.planner import (
    NodeRoom,
    Preemptor,
    ShortenCosts,
    plan_by_tests,
    plan_shorten,
)
from hybrid_policy.preemption.queue import QueueView, WaitEstimate
from hybrid_policy.preemption.shortest import ShortestCosts, plan_shortest, queue_wait
from hybrid_policy.preemption.victims import VictimUnit, gpus_by_team
from hybrid_policy.preemption.wide import WideCosts, plan_wide
from hybrid_policy.resources import GPU

if TYPE_CHECKING:
    from hybrid_policy.preemption.phase import PreemptionSettings

Gangs = Mapping[tuple[str, str], Sequence[RunningPod]]


class RunTimes(Protocol):
    """Run times as the policy predicts them (``phase.Predictions``)."""

    def duration_s(self, pod: PendingPod) -> float:
        """A waiting pod's predicted run time."""
        ...

    def remaining_s(self, pod: RunningPod) -> float:
        """A running pod's predicted time left."""
        ...


def plan_overdue(
    preemptor: Preemptor,
    room: NodeRoom,
    overdue_s: float,
    shares: TeamShares,
    settings: PreemptionSettings,
    now_s: float,
    gangs: Gangs,
    eligible: Mapping[str, bool],
) -> PreemptionPlan | None:
    """The cheapest set of units of no higher priority on the reserved node, once the
    reservation is overdue by more than ``overdue_s`` and the teams' shares allow it."""
    if overdue_s <= settings.rules.overdue_s:
        return None
    team = preemptor.pod.namespace
    gpus = float(preemptor.pod.requests.get(GPU, 0))

    def set_ok(units: tuple[VictimUnit, ...]) -> bool:
        taken = gpus_by_team(units)
        return fair_to_take(shares, team, gpus, taken)

    return plan_by_tests(
        preemptor,
        [room],
        PreemptionReason.DEFRAGMENT,
        lambda u: u.priority <= preemptor.pod.priority,
        set_ok,
        settings.rules,
        now_s,
        gangs,
        eligible,
    )


def plan_for_completion(
    preemptor: Preemptor,
    rooms: Sequence[NodeRoom],
    shares: TeamShares,
    settings: PreemptionSettings,
    now_s: float,
    gangs: Gangs,
    eligible: Mapping[str, bool],
    predictions: RunTimes | None,
    queue: QueueView,
) -> PreemptionPlan | None:
    """The first plan among defragment, wide, shorten (when its wait counts the queue)
    and shortest that ``settings.reasons`` names and the state allows."""
    reasons = settings.reasons
    pod = preemptor.pod
    reserved = queue.reserved.get(pod.uid)
    if PreemptionReason.DEFRAGMENT in reasons and reserved is not None:
        room = next((r for r in rooms if r.name == reserved.node), None)
        if room is not None:
            plan = plan_overdue(
                preemptor, room, reserved.overdue_s, shares, settings, now_s, gangs, eligible
            )
            if plan is not None:
                return plan
    if predictions is None or not rooms:
        return None
    if PreemptionReason.WIDE in reasons:
        wide = WideCosts(
            predictions.remaining_s,
            settings.wide_gpus,
            settings.restart_s,
            settings.shorten_margin,
            settings.max_lost_s,
        )
        plan = plan_wide(preemptor, rooms, shares, settings.rules, now_s, wide, gangs, eligible)
        if plan is not None:
            return plan
    duration = predictions.duration_s(pod)
    wait = _wait(preemptor, rooms, shares, settings, predictions, queue)
    if PreemptionReason.SHORTEN in reasons and settings.wait is WaitEstimate.QUEUE:
        costs = ShortenCosts(
            duration, predictions.remaining_s, settings.restart_s, settings.shorten_margin, wait
        )
        plan = plan_shorten(preemptor, rooms, shares, settings.rules, now_s, costs, gangs, eligible)
        if plan is not None:
            return plan
    if PreemptionReason.SHORTEST in reasons:
        shortest = ShortestCosts(
            duration,
            predictions.remaining_s,
            settings.shortest_ratio,
            wait,
            settings.restart_s,
            settings.shorten_margin,
            settings.max_lost_s,
        )
        return plan_shortest(
            preemptor, rooms, shares, settings.rules, now_s, shortest, gangs, eligible
        )
    return None


def _wait(
    preemptor: Preemptor,
    rooms: Sequence[NodeRoom],
    shares: TeamShares,
    settings: PreemptionSettings,
    predictions: RunTimes,
    queue: QueueView,
) -> float | None:
    """The preemptor's predicted wait counting the queue ahead, when ``wait=queue`` and
    the driver knows the queue; None otherwise."""
    if settings.wait is not WaitEstimate.QUEUE or queue.work_ahead is None:
        return None
    ahead = queue.work_ahead(preemptor.pod)
    return queue_wait(
        rooms, preemptor.pod.requests, predictions.remaining_s, ahead, shares.total_gpus
    )
