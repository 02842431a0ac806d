"""The binding cycle: a decided placement becomes a Binding, or its pod goes back.

As in kube-scheduler (``schedule_one.go``), the scheduling cycle decides and assumes, and
the binding cycle runs beside the next pass. Each placement gets a :class:`BindTicket`
the moment it is decided. The loop cancels a ticket when the node or the pod goes, or
leadership is lost; the API thread asks the ticket right before sending the Binding, after
the rate limit, so a cancelled placement is never sent. Whatever happens (a refused
binding, an API server that is down, an exception anywhere), the pod ends bound, back in
the queue (at once, or after a back-off), or forgotten because it is gone: never held.

A Binding that got no answer may have been committed: its pod keeps its room and the same
Binding is sent again after a back-off (:mod:`hybrid_operator.resends`) instead of the pod
being decided again, which could give its room to another pod while it runs there. A
resend answered 409 found the pod bound (most likely by the first request): the pod keeps
its room until a listing shows where it is bound. Such a Binding's pod gets its
``Scheduled`` Event when the watch shows that the Binding landed
(:mod:`hybrid_operator.landings`), even after leadership was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.api import BindOutcome, BindResult, ClusterApi
from hybrid_operator.k8s.calls import ApiThreads
from hybrid_operator.k8s.views import DECISION_ANNOTATION
from hybrid_operator.landings import Landings
from hybrid_operator.observability import Counters, OperatorMetrics
from hybrid_operator.reporting import Reporter
from hybrid_operator.resends import Resend, Resends
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

    def call_off(self, reason: CancelReason) -> None:
        """Mark it cancelled for ``reason``, unless it is already."""
        if self.cancelled is None:
            self.cancelled = reason


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
        #: The latest decision of each pod not yet settled, by UID. An earlier one may
        #: still be told (its Event on its way) after its pod was parked and decided
        #: again: only the latest may settle the pod, its ticket and its queue state.
        self.latest: dict[str, Decision] = {}
        #: What to tell each pod left pending with a node held, by UID (from the pass).
        self.notices: dict[str, ReservationNotice] = {}
        #: Annotations a pod's Binding carries besides the decision record, by UID.
        self.annotations: dict[str, dict[str, str]] = {}
        #: Bindings whose outcome is unknown, to be sent again.
        self.resends = Resends(cache, queue, clock)
        #: Bindings that got no answer, told once the watch shows that they landed.
        self.landings = Landings()

    def issue(self, decisions: list[Decision], term: int) -> None:
        """Tickets for the placements of a pass, at once, before any is awaited; every
        decision of the pass becomes its pod's latest."""
        for d in decisions:
            self.latest[d.pod.uid] = d
            if d.node is not None:
                if d.pod.uid in self.tickets:
                    log.warning(
                        "%s was decided again while its binding to %s is on its way",
                        d.pod.key, self.tickets[d.pod.uid].decision.node,
                    )  # fmt: skip
                self.tickets[d.pod.uid] = BindTicket(d, term)

    def cancel(self, uid: str, reason: CancelReason) -> bool:
        """Call off the binding of ``uid`` if it is on its way or to be sent again; True
        if there was one."""
        resent = self.resends.call_off(uid)
        ticket = self.tickets.get(uid)
        if ticket is None:
            return resent
        ticket.call_off(reason)
        return True

    def _on_way_to(self, node: str) -> list[str]:
        """The pods whose binding to ``node`` is on its way."""
        return [u for u, t in self.tickets.items() if t.decision.node == node]

    def cancel_on_node(self, node: str) -> list[str]:
        """Call off every binding to ``node``; returns their pods' UIDs."""
        uids = list(dict.fromkeys([*self._on_way_to(node), *self.resends.to(node)]))
        for uid in uids:
            self.cancel(uid, CancelReason.NODE_GONE)
        return uids

    def stop_sending_to(self, node: str) -> None:
        """Mark every ticket to ``node`` cancelled at once, its deletion just seen: the API
        threads send nothing more there while the deletion waits for the loop, which
        settles the rest (the queue, the cache, the Bindings to send again) when it
        applies it."""
        for uid in self._on_way_to(node):
            self.tickets[uid].call_off(CancelReason.NODE_GONE)

    def cancel_all(self, reason: CancelReason) -> None:
        """Call off every binding on its way or to be sent again (leadership lost)."""
        for uid in dict.fromkeys([*self.tickets, *self.resends.book]):
            self.cancel(uid, reason)

    def still_wanted(self, ticket: BindTicket) -> bool:
        """Asked by the API thread right before sending: not cancelled, still leading."""
        return ticket.cancelled is None and self.leader_term() == ticket.term

    def is_latest(self, d: Decision) -> bool:
        """Whether ``d`` is its pod's latest decision, not yet settled."""
        return self.latest.get(d.pod.uid) is d

    def skip(self, d: Decision) -> None:
        """A decision of the pass that is not settled here (a preemptor held on a node,
        told by the preemption)."""
        if self.is_latest(d):
            del self.latest[d.pod.uid]

    async def settle(self, d: Decision) -> None:
        """Bind (or report) one decision; the pod always ends settled. A decision that
        was superseded while it was told leaves the pod to its latest one."""
        uid = d.pod.uid
        try:
            if d.node is None:
                await self._unschedulable(d)
            else:
                await self._bind(d)
        finally:
            if self.is_latest(d):
                del self.latest[uid]
                self.tickets.pop(uid, None)
                if self.queue.is_in_flight(uid):
                    self._unsettled(uid)

    async def tell_landed(self) -> None:
        """The ``Scheduled`` Events of the Bindings seen to land though unanswered."""
        for d in self.landings.take():
            await self.reporter.scheduled(d)

    def _unsettled(self, uid: str) -> None:
        """Nothing settled the pod (an exception): try again after a back-off, sending the
        same Binding again while its first one's outcome is unknown."""
        if uid in self.resends:
            self.resends.wait(uid)
            return
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
        # A later pass may place the pod while the Event is on its way.
        placed = self.cache.is_placed
        await self.reporter.unschedulable(d.pod, d.status.message, lambda: not placed(d.pod.uid))

    async def _bind(self, d: Decision) -> None:
        pod, node = d.pod, str(d.node)
        ticket = self.tickets.get(pod.uid)
        if ticket is None or ticket.decision is not d:  # settled meanwhile: the pod went
            ticket = BindTicket(d, -1, CancelReason.POD_GONE)
        resend = self.resends.of(d)
        annotations = dict(resend.annotations) if resend is not None else {
            **self.reporter.record_annotations(d),
            **self.annotations.pop(pod.uid, {}),
        }  # fmt: skip
        if resend is not None:
            log.info("sending the binding of %s to %s again: no answer came", pod.key, node)
        try:
            result = await self.threads.call(
                self.api.bind, pod, node, annotations, lambda: self.still_wanted(ticket)
            )
        except Exception as exc:  # whatever the client raised: the pod is retried
            result = BindResult(BindOutcome.ERROR, f"{type(exc).__name__}: {exc}", True)
        self._count(result, resend)
        self.reporter.forget(pod.uid)
        # A pod whose deletion was applied meanwhile has nothing left to tell.
        known = pod.uid in self.cache.pods_seen
        if result.outcome is BindOutcome.ERROR and result.unreachable and known:
            record = annotations.get(DECISION_ANNOTATION)
            self.landings.unanswered(d, record, self.cache.bound.get(pod.uid))
        if result.outcome is BindOutcome.BOUND:
            self.landings.answered(pod.uid)
            self.resends.drop(pod.uid)
            self._bound(d, ticket)
            await self.reporter.scheduled(d)
            return
        if self._holds_room(d, ticket) and self._unanswered(d, result, annotations, resend):
            return
        self.resends.drop(pod.uid)
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
            self.queue.back_off(pod.uid, self.clock())
            self.queue.move_all_to_active()
            log.warning("binding %s to %s failed, will retry: %s", pod.key, node, result.detail)

    def _count(self, result: BindResult, resend: Resend | None) -> None:
        outcome = result.outcome
        self.counters.bind_attempts[outcome] = self.counters.bind_attempts.get(outcome, 0) + 1
        self.metrics.attempts.labels(result=outcome.value).inc()
        if resend is not None:
            self.counters.resends[outcome] = self.counters.resends.get(outcome, 0) + 1
            self.metrics.resends.labels(result=outcome.value).inc()

    def _holds_room(self, d: Decision, ticket: BindTicket) -> bool:
        """Whether the pod still waits for this binding alone, assumed on its node: not
        called off, not settled by the watch, a listing or a deletion meanwhile."""
        uid = d.pod.uid
        return (
            ticket.cancelled is None
            and self.queue.is_in_flight(uid)
            and self.cache.assumed_on(uid) == d.node
        )

    def _unanswered(
        self,
        d: Decision,
        result: BindResult,
        annotations: dict[str, str],
        resend: Resend | None,
    ) -> bool:
        """Keep the pod's room and send the same Binding again after a back-off when the
        outcome is unknown (no answer), or when a resend found the pod bound already (409,
        most likely by the first request: a listing shows where); False otherwise."""
        pod, node = d.pod, d.node
        if result.outcome is BindOutcome.ERROR and result.unreachable:
            self.counters.errors += 1
            self.suspect("a binding could not reach the API server")
            log.warning(
                "binding %s to %s got no answer, its room is kept and it will be sent again: %s",
                pod.key, node, result.detail,
            )  # fmt: skip
        elif result.outcome is BindOutcome.CONFLICT and resend is not None:
            self.counters.conflicts += 1
            self.suspect(f"the binding of {pod.key} sent again found it bound already")
            log.info("binding %s to %s again: %s (%s)", pod.key, node, result.outcome,
                     result.detail)  # fmt: skip
        else:
            return False
        self.resends.keep(d, annotations)
        return True

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
