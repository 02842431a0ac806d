"""The API calls of the preemptions a pass planned (:mod:`hybrid_operator.preemption`): first
the preemption counts, written to their ConfigMap
(:mod:`hybrid_operator.preemption_ledger`) for every plan of the pass at once (if that
fails, every hold of the pass ends and no victim is touched); then, in kube-scheduler's
order, per victim (each once, for a gang as for a pod alone) the
``DisruptionTarget`` condition, then the deletion with its own grace period and a UID
precondition, then a ``Preempted`` Event; once every victim's deletion was accepted, each
preemptor's ``status.nominatedNodeName`` (its own node: a gang's members each theirs) and
a ``Preempting`` Event. A call that fails ends the whole hold with the reason; Events are
best effort. Then the failures are told to their preemptors, and bound preemptors have
their nominated node cleared.
"""

from __future__ import annotations

import asyncio
import logging

from hybrid_operator.k8s.api import pod_reference, said
from hybrid_operator.preemption import Preemptions
from hybrid_operator.preemption_holds import Hold
from hybrid_policy.preemption.model import RunningPod

log = logging.getLogger("hybrid_scheduler")


async def carry_out(phase: Preemptions) -> None:
    """Write the counts, then make the calls of the plans started since the last time;
    tell the failures; clear the nominated node of bound preemptors."""
    started, phase.started = phase.started, []
    started = [hold for hold in started if phase.holding(hold)]
    if started:
        why = await phase.ledger.write(phase.present_owners())
        if why is not None:  # counted nowhere: no victim is touched
            for hold in started:
                phase.release(hold, why)
            started = []
    await asyncio.gather(*(_preempt(phase, hold) for hold in started))
    told, phase.to_tell = phase.to_tell, []
    for pod, message in told:
        await phase.reporter.unreserved(pod)
        await phase.reporter.unschedulable(pod, message)
    clears, phase.to_clear = phase.to_clear, {}
    for pod in clears.values():
        await phase.reporter.clear_nomination(pod)


async def _preempt(phase: Preemptions, hold: Hold) -> None:
    """Condition, deletion and Event per victim; then each preemptor's nomination."""
    for victim in hold.victims:
        if not phase.holding(hold):
            return  # a preemptor went, or was bound elsewhere, meanwhile
        why = await _take(phase, victim, hold.victim_message)
        if why is not None:
            phase.release(hold, why)
            await _tell_victim(phase, victim, f"not preempted for {hold.who}: {why}", True)
            return
        phase.metrics.preemption_victims.inc()
        await _tell_victim(phase, victim, hold.victim_message, False)
    phase.metrics.preemption_lost.inc(hold.plan.work_lost_s)
    hold.deleted = True
    for pod, node in hold.members:
        if not phase.holding(hold):
            return  # ended meanwhile: its preemptors are told why
        try:
            await phase.threads.call(phase.api.nominate, pod, node, hold.preemptor_message)
            phase.reporter.nominated[pod.uid] = node
        except Exception as exc:  # the nomination is for people; the hold keeps the room
            log.warning("could not set nominatedNodeName on %s: %s", pod.key, exc)
        await _event(phase, pod_reference(pod), "Preempting", hold.preemptor_message)


async def _take(phase: Preemptions, victim: RunningPod, message: str) -> str | None:
    """Mark and delete one victim; None when done, else why not."""
    ns, name = victim.namespace, victim.name
    try:
        await phase.threads.call(phase.api.mark_disruption_target, ns, name, message)
    except Exception as exc:
        return f"could not mark {victim.key} as a disruption target ({said(exc)})"
    try:
        result = await phase.threads.call(phase.api.delete_pod, ns, name, victim.uid)
    except Exception as exc:
        return f"could not delete {victim.key} ({said(exc)})"
    if not result.deleted:
        return f"could not delete {victim.key}: {result.outcome} ({result.detail})"
    return None


async def _tell_victim(phase: Preemptions, victim: RunningPod, message: str, warning: bool) -> None:
    ref = {"kind": "Pod", "namespace": victim.namespace, "name": victim.name, "uid": victim.uid}
    reason = "PreemptionFailed" if warning else "Preempted"
    await _event(phase, ref, reason, message, warning)


async def _event(
    phase: Preemptions, ref: dict[str, str], reason: str, message: str, warning: bool = False
) -> None:
    try:
        await phase.threads.call(phase.api.event, ref, reason, message, warning)
    except Exception as exc:  # Events are best effort
        log.warning("could not post %s on %s: %s", reason, ref.get("name"), exc)
