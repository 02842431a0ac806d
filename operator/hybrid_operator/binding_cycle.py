"""The binding cycle: a decided placement becomes a Binding, or its pod goes back.

As in kube-scheduler (``schedule_one.go``), the scheduling cycle decides and assumes, and
the binding cycle runs beside the next pass. Each placement gets a :class:`BindTicket`
the moment it is decided. The loop cancels a ticket when the node or the pod goes, or
leadership is lost; the API thread asks the ticket right before sending the Binding, after
the rate limit, so a cancelled placement is never sent. Whatever happens (a refused
binding, an API server that is down, an exception anywhere), the pod ends bound, back in
the queue (at once, or after a back-off), or forgotten because it is gone: never held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.api import BindOutcome, BindResult, ClusterApi
from hybrid_operator.k8s.calls import ApiThreads
from hybrid_operator.observability import Counters, OperatorMetrics
from hybrid_operator.reporting import Reporter
from hybrid_operator.reservations import ReservationNotice
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.queue import SchedulingQueue

log = logging.getLogger("hybrid_scheduler")


class CancelReason(StrEnum):
    """Why a decided placement must not be sent."""

    NODE_GONE = "the node was deleted"
    POD_GONE = "the pod was deleted"
    NOT_LEADER = "this replica is no longer the leader"


@dataclass
class BindTicket:
    """One placement on its way to the API server.

    The only object both threads touch: the loop writes ``cancelled`` (one assignment),
    the API thread reads it; both are atomic in Python.
    """

    decision: Decision
    #: The leadership term the placement was decided in.
    term: int
    cancelled: CancelReason | None = None


class BindingCycle:
    """Binds decided placements and settles every pod it was given."""

    def __init__(
        self,
        cache: ClusterCache,
        queue: SchedulingQueue,
        api: ClusterApi,
        threads: ApiThreads,
        reporter: Reporter,
        metrics: OperatorMetrics,
        counters: Counters,
        clock: Callable[[], float],
        leader_term: Callable[[], int | None],
        suspect: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.cache = cache
        self.queue = queue
        self.api = api
        self.threads = threads
        self.reporter = reporter
        self.metrics = metrics
        self.counters = counters
        self.clock = clock
        #: The current leadership term, or None while not leading (read at any moment).
        self.leader_term = leader_term
        #: Told when the cache may be behind: a binding could not reach the API server (the
        #: watches may be cut too), or found its pod bound or replaced already.
        self.suspect = suspect
        self.tickets: dict[str, BindTicket] = {}
        #: What to tell each pod left pending with a node held, by UID (from the pass).
        self.notices: dict[str, ReservationNotice] = {}
        #: Annotations a pod's Binding carries besides the decision record, by UID.
        self.annotations: dict[str, dict[str, str]] = {}

    def issue(self, decisions: list[Decision], term: int) -> None:
        """Tickets for the placements of a pass, at once, before any is awaited."""
        for d in decisions:
            if d.node is not None:
                self.tickets[d.pod.uid] = BindTicket(d, term)

    def cancel(self, uid: str, reason: CancelReason) -> bool:
        """Call off the binding of ``uid`` if it is on its way; True if there was one."""
        ticket = self.tickets.get(uid)
        if ticket is None:
            return False
        if ticket.cancelled is None:
            ticket.cancelled = reason
        return True

    def cancel_on_node(self, node: str) -> list[str]:
        """Call off every binding to ``node``; returns their pods' UIDs."""
        uids = [u for u, t in self.tickets.items() if t.decision.node == node]
        for uid in uids:
            self.cancel(uid, CancelReason.NODE_GONE)
        return uids

    def cancel_all(self, reason: CancelReason) -> None:
        """Call off every binding on its way (leadership lost)."""
        for uid in list(self.tickets):
            self.cancel(uid, reason)

    def still_wanted(self, ticket: BindTicket) -> bool:
        """Asked by the API thread right before sending: not cancelled, still leading."""
        return ticket.cancelled is None and self.leader_term() == ticket.term

    async def settle(self, d: Decision) -> None:
        """Bind (or report) one decision; the pod always ends settled."""
        uid = d.pod.uid
        try:
            if d.node is None:
                await self._unschedulable(d)
            else:
                await self._bind(d)
        finally:
            self.tickets.pop(uid, None)
            if self.queue.is_in_flight(uid):
                # Nothing above settled it (an exception): try again after a back-off.
                self.cache.forget(uid)
                self.queue.back_off(uid, self.clock())

    async def _unschedulable(self, d: Decision) -> None:
        self.counters.unschedulable += 1
        self.metrics.attempts.labels(result="unschedulable").inc()
        self.queue.park(d.pod.uid, self.clock())
        notice = self.notices.pop(d.pod.uid, None)
        if d.nomination is not None and notice is not None:
            await self.reporter.reserved(d.pod, notice)
            return
        await self.reporter.unreserved(d.pod)
        await self.reporter.unschedulable(d.pod, d.status.message)

    async def _bind(self, d: Decision) -> None:
        pod, node = d.pod, str(d.node)
        ticket = self.tickets.get(pod.uid) or BindTicket(d, -1, CancelReason.POD_GONE)
        annotations = {
            **self.reporter.record_annotations(d),
            **self.annotations.pop(pod.uid, {}),
        }
        try:
            result = await self.threads.call(
                self.api.bind, pod, node, annotations, lambda: self.still_wanted(ticket)
            )
        except Exception as exc:  # whatever the client raised: the pod is retried
            result = BindResult(BindOutcome.ERROR, f"{type(exc).__name__}: {exc}", True)
        self.counters.bind_attempts[result.outcome] = (
            self.counters.bind_attempts.get(result.outcome, 0) + 1
        )
        self.metrics.attempts.labels(result=result.outcome.value).inc()
        self.reporter.forget(pod.uid)
        if result.outcome is BindOutcome.BOUND:
            self._bound(d, ticket)
            await self.reporter.scheduled(d)
            return
        self.cache.forget(pod.uid)
        if result.outcome is BindOutcome.CANCELLED:
            self._called_off(d, ticket)
        elif result.outcome in (BindOutcome.CONFLICT, BindOutcome.GONE):
            # Bound by someone else, recreated, or deleted: the watch says what happens next.
            self.counters.conflicts += 1
            self.queue.done(pod.uid)
            if result.outcome is BindOutcome.CONFLICT:
                # Until a listing shows where, the room the pod holds looks free here.
                self.suspect(f"the binding of {pod.key} found it bound or replaced already")
            log.info("binding %s to %s: %s (%s)", pod.key, node, result.outcome, result.detail)
        else:
            self.counters.errors += 1
            if result.unreachable:
                self.suspect("a binding could not reach the API server")
            self.queue.back_off(pod.uid, self.clock())
            self.queue.move_all_to_active()
            log.warning("binding %s to %s failed, will retry: %s", pod.key, node, result.detail)

    def _bound(self, d: Decision, ticket: BindTicket) -> None:
        self.counters.bound += 1
        if d.pod.created_at_s > 0:
            self.metrics.latency.observe(max(self.clock() - d.pod.created_at_s, 0.0))
        self.queue.done(d.pod.uid)
        if ticket.cancelled is CancelReason.NODE_GONE:
            log.warning(
                "%s was bound to %s while the node was being deleted (the binding was sent "
                "before the deletion was seen); the pod garbage collector removes it",
                d.pod.key,
                d.node,
            )

    def _called_off(self, d: Decision, ticket: BindTicket) -> None:
        self.counters.cancelled += 1
        reason = ticket.cancelled or CancelReason.NOT_LEADER
        log.info("binding %s to %s called off: %s", d.pod.key, d.node, reason.value)
        if reason is CancelReason.POD_GONE:
            self.queue.done(d.pod.uid)
        else:
            self.queue.requeue(d.pod.uid)
