"""What the scheduler tells people: Events, the PodScheduled condition, decision records.

Every report is best effort: a failed Event or condition is logged and never stops
scheduling. A pod that keeps failing for the same reason gets one FailedScheduling Event,
not one per retry. A pod that holds a reservation gets ``status.nominatedNodeName``, the
PodScheduled condition and a ``Reserved`` Event once per change of node, not per pass;
the field is cleared when the reservation ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from hybrid_operator.decision_record import DECISION_ANNOTATION
from hybrid_operator.k8s.api import ClusterApi, pod_reference, record_json
from hybrid_operator.k8s.calls import ApiThreads
from hybrid_operator.k8s.problems import Problem
from hybrid_operator.reservations import ReservationNotice
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.policies import Policy

#: Pauses before the second and third try of a ``Scheduled`` Event whose post failed.
SCHEDULED_RETRY_S = (0.5, 2.0)


def scheduled_event_name(pod: PendingPod) -> str:
    """The name of ``pod``'s ``Scheduled`` Event: the pod's name and a digest of its UID
    (one per pod object, which is bound once), within the 253 characters of a name."""
    digest = hashlib.sha256((pod.uid or pod.key).encode()).hexdigest()[:16]
    return f"{pod.name[:200].rstrip('.-')}.scheduled.{digest}"


log = logging.getLogger("hybrid_scheduler")


class Reporter:
    """Posts Events and conditions through the API threads, and formats decision records."""

    def __init__(
        self,
        api: ClusterApi,
        threads: ApiThreads,
        policy: Policy,
        identity: str,
        scheduler_name: str,
        clock: Callable[[], float],
        metrics_status: Callable[[], str],
    ) -> None:
        self.api = api
        self.threads = threads
        self.policy = policy
        self.identity = identity
        self.scheduler_name = scheduler_name
        self.clock = clock
        self.metrics_status = metrics_status
        #: The last FailedScheduling message posted per pod UID.
        self.last_failure: dict[str, str] = {}
        #: Problems already reported, per object UID (a re-list does not repeat them).
        self.reported: dict[str, set[str]] = {}
        #: The node written as ``status.nominatedNodeName`` per pending pod UID.
        self.nominated: dict[str, str] = {}

    async def _call(self, what: str, key: str, fn: Callable[..., object], *args: object) -> bool:
        try:
            await self.threads.call(fn, *args)
        except Exception as exc:  # reporting is best effort; never let it stop scheduling
            log.warning("could not %s on %s: %s", what, key, exc)
            return False
        return True

    async def reserved(self, pod: PendingPod, notice: ReservationNotice) -> None:
        """``status.nominatedNodeName``, PodScheduled=False and a ``Reserved`` Event, when
        the node held for ``pod`` is new (a failed write is tried again next pass)."""
        if self.nominated.get(pod.uid) == notice.node:
            return
        message = notice.message()
        if not await self._call("set nominatedNodeName", pod.key, self.api.nominate, pod,
                                notice.node, message):  # fmt: skip
            return
        self.nominated[pod.uid] = notice.node
        self.last_failure.pop(pod.uid, None)  # a later failure is news again
        ref = pod_reference(pod)
        await self._call("post Reserved", pod.key, self.api.event, ref, "Reserved", message)

    async def unreserved(self, pod: PendingPod) -> None:
        """The reservation of the pending ``pod`` was dropped: clear the field."""
        if pod.uid in self.nominated:
            await self.clear_nomination(pod)

    async def clear_nomination(self, pod: PendingPod) -> bool:
        """Clear ``status.nominatedNodeName`` of ``pod`` (bound, or its reservation gone)."""
        cleared = await self._call("clear nominatedNodeName", pod.key, self.api.nominate, pod, None)
        if cleared:
            self.nominated.pop(pod.uid, None)
        return cleared

    def restored(self, uid: str, node: str) -> None:
        """``node`` is already written on the pod (found there at start-up)."""
        self.nominated[uid] = node

    async def problems(self, reference: dict[str, str], problems: tuple[Problem, ...]) -> None:
        """A Warning Event ``InvalidField`` per problem found converting an object."""
        seen = self.reported.setdefault(reference.get("uid") or reference.get("name", ""), set())
        for problem in problems:
            if problem.message in seen:
                continue
            seen.add(problem.message)
            name = f"{reference.get('kind')} {reference.get('name')}"
            log.warning("%s: %s", name, problem.message)
            await self._call(
                "post InvalidField", name, self.api.event, reference, "InvalidField",
                problem.message, True,
            )  # fmt: skip

    async def unschedulable(
        self, pod: PendingPod, message: str, waiting: Callable[[], bool] = lambda: True
    ) -> None:
        """FailedScheduling and PodScheduled=False, once per distinct message; the
        condition is not written once ``waiting`` says the pod no longer waits (a later
        pass placed it)."""
        if self.last_failure.get(pod.uid) == message:
            return
        self.last_failure[pod.uid] = message
        ref = pod_reference(pod)
        await self._call(
            "post FailedScheduling", pod.key, self.api.event, ref, "FailedScheduling", message, True
        )
        if waiting():
            await self._call("set PodScheduled", pod.key, self.api.mark_unschedulable, pod, message)

    async def scheduled(self, d: Decision) -> None:
        """The ``Scheduled`` Event of a bound pod, under a name of its own so that a post
        whose answer was lost (a replica frozen mid-call, a timeout) is tried again
        without a second Event."""
        share = "n/a" if d.namespace_share is None else f"{d.namespace_share:.3f}"
        score = "n/a" if d.score is None else f"{d.score:.1f}"
        message = (
            f"Successfully assigned {d.pod.key} to {d.node} "
            f"(score {score}, namespace share {share})"
        )
        ref = pod_reference(d.pod)
        name = scheduled_event_name(d.pod)
        for pause in (*SCHEDULED_RETRY_S, None):
            posted = await self._call(
                "post Scheduled", d.pod.key, self.api.event, ref, "Scheduled", message, False, name
            )
            if posted or pause is None:
                return
            await asyncio.sleep(pause)

    def forget(self, uid: str) -> None:
        """The pod was bound: its next failure is news again."""
        self.last_failure.pop(uid, None)

    def forget_object(self, uid: str) -> None:
        """The object is gone: drop everything remembered about it."""
        self.last_failure.pop(uid, None)
        self.reported.pop(uid, None)
        self.nominated.pop(uid, None)

    def record(self, d: Decision) -> dict[str, Any]:
        """The compact decision record written on a bound pod."""
        return {
            "policy": self.policy.name,
            "path": f"{d.path}, {self.policy.fallback_part} fallback"
            if self.policy.fallback
            else d.path,
            "node": d.node,
            "score": None if d.score is None else round(d.score, 2),
            "runnersUp": [{"node": n, "score": round(s, 2)} for n, s in d.runners_up],
            "namespaceShare": None if d.namespace_share is None else round(d.namespace_share, 4),
            "metrics": self.metrics_status(),
            "instance": self.identity,
            "scheduler": self.scheduler_name,
            "at": round(self.clock(), 3),
        }

    def record_annotations(self, d: Decision) -> dict[str, str]:
        """The annotations a Binding carries onto the pod: the decision record."""
        return {DECISION_ANNOTATION: record_json(self.record(d))}
