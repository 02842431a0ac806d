"""The scheduling loop: the one owner of the cache and the queue.

Watch handlers only convert and feed events (:meth:`Scheduler.feed`); the loop applies
them (:meth:`Scheduler.apply`), runs a pass every ``batch_interval_s`` (the scheduling
cycle, :mod:`hybrid_operator.scheduling_cycle`), and hands the placements to the binding
cycle (:mod:`hybrid_operator.binding_cycle`), which binds them beside the next pass. All of
it runs on the event loop's thread, so the cache and the queue have a single owner; only
blocking API calls run in threads, and they touch neither. Full listings reconcile the
cache (objects deleted while a watch was down go), periodically and whenever the watches
re-list.

A pod is bound at most once: a pod that is bound or assumed is never queued or decided
again, a binding carries the pod's UID, and a binding whose node or pod went, or whose
leadership term ended, is called off before it is sent. A binding that got no answer is
sent again as it was, its pod keeping its room meanwhile (:mod:`hybrid_operator.resends`).

With a reserving policy the loop also feeds the policy's run-time predictor from the
watch (:mod:`hybrid_operator.predictions`), reads training progress before each pass
(:mod:`hybrid_operator.progress`), and keeps the arbitrator's reservations and the pods'
``status.nominatedNodeName`` up to date between passes and across a restart
(:mod:`hybrid_operator.reservation_keeper`).

Every pod carries its gang (a PodGroup's, or an indexed Job's) as the watches state it
(:mod:`hybrid_operator.gang_feed`), and after each pass the leader writes the status of
the PodGroups whose members changed (:mod:`hybrid_operator.gang_reports`).

With preemption on, the leader plans after each pass which waiting pods take back room
from opted-in running pods, makes the calls, and binds each preemptor in a later pass once
its victims are gone (:mod:`hybrid_operator.preemption`); each term reads the preemption
counts before it plans (:mod:`hybrid_operator.preemption_ledger`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hybrid_operator.binding_cycle import BindingCycle, CancelReason
from hybrid_operator.cache import ClusterCache
from hybrid_operator.decision_record import DECISION_ANNOTATION
from hybrid_operator.gang_feed import GangFeed
from hybrid_operator.gang_reports import GangReports
from hybrid_operator.gangs import GangBook, gang_outcomes
from hybrid_operator.k8s.api import ClusterApi
from hybrid_operator.k8s.calls import ApiThreads, Listing
from hybrid_operator.k8s.convert import Body
from hybrid_operator.k8s.problems import Problem
from hybrid_operator.k8s.views import (
    ObjectKind,
    WatchEvent,
    WatchType,
    problems_of,
    watch_event,
)
from hybrid_operator.leader import LeaderElector
from hybrid_operator.observability import Counters, OperatorMetrics
from hybrid_operator.predictions import PredictionFeed
from hybrid_operator.preemption import Preemptions
from hybrid_operator.preemption_calls import carry_out
from hybrid_operator.preemption_ledger import PreemptionLedger
from hybrid_operator.progress import ProgressReader
from hybrid_operator.reporting import Reporter
from hybrid_operator.reservation_keeper import ReservationKeeper
from hybrid_operator.scheduling_cycle import SchedulingCycle
from hybrid_operator.settings import OperatorSettings, SettingsError
from hybrid_operator.shadow import ShadowContext, ShadowRecorder
from hybrid_operator.utilisation import PromClient, UtilisationCollector
from hybrid_operator.webhook import NamespaceOptIn
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.queue import SchedulingQueue
from hybrid_policy.policies import ModelOptions, Policy, build_policy, override_reservation

__all__ = ["DECISION_ANNOTATION", "Scheduler", "policy_from"]
log = logging.getLogger("hybrid_scheduler")
#: Passes whose bindings may be on their way at once.
MAX_PASSES_IN_FLIGHT = 2
#: Seconds between tries of a reconciling listing that failed while passes wait for it.
RELIST_RETRY_S = 1.0


def policy_from(settings: OperatorSettings, rng: np.random.Generator) -> Policy:
    """The policy the settings name, its model from ``model_path``/``model_fallback``.

    Raises :class:`~hybrid_policy.dqn.checkpoint.CheckpointError` (naming the file and the
    problem) when a learned policy's checkpoint is unusable and there is no fallback.
    """
    model = ModelOptions(
        Path(settings.model_path) if settings.model_path else None, settings.model_fallback
    )
    policy = build_policy(settings.policy, rng, model)
    if not settings.reservation.strip():
        return policy
    changed = override_reservation(policy, settings.reservation)
    if changed is None:
        raise SettingsError(f"reservation: policy {settings.policy!r} does not reserve")
    return changed


class Scheduler:
    """Queue, cache and policy, driven by watch events and a periodic pass."""

    def __init__(
        self,
        settings: OperatorSettings,
        api: ClusterApi,
        clock: Callable[[], float] = time.time,
        collector: UtilisationCollector | None = None,
        elector: LeaderElector | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.clock = clock
        self.collector = collector
        self.elector = elector
        self.cache = ClusterCache(settings.default_weight, clock)
        self.queue = SchedulingQueue(
            settings.initial_backoff_s, settings.max_backoff_s, settings.max_parked_s
        )
        self.rng = np.random.default_rng(settings.seed)
        self.policy = policy or policy_from(settings, self.rng)
        if self.policy.fallback:
            log.warning(
                "policy %s runs degraded: the model is unusable, scheduling with %s",
                self.policy.name,
                self.policy.fallback,
            )
        self.counters = Counters()
        self.metrics = OperatorMetrics()
        if collector is not None:
            collector.on_drop = self.metrics.count_dropped_series
        self.threads = ApiThreads()
        #: Namespaces labelled ``hybrid-scheduler.io/enabled=true`` (for the webhook).
        self.enabled_namespaces = NamespaceOptIn(api.read_namespace_labels)
        self.reporter = Reporter(
            api, self.threads, self.policy, settings.identity, settings.scheduler_name, clock,
            lambda: self.metrics_status,
        )  # fmt: skip
        self.scheduling = SchedulingCycle(
            self.cache, self.queue, self.policy, self.rng, self.metrics, clock,
            settings.batch_size, collector, binding=lambda uid: uid in self.binding.tickets,
        )  # fmt: skip
        self.binding = BindingCycle(
            self.cache, self.queue, api, self.threads, self.reporter, self.metrics,
            self.counters, clock, self.leader_term, self.suspect,
        )  # fmt: skip
        self.shadow = self._shadow() if settings.shadow_of else None
        self.arbitrator = self.scheduling.arbitrator
        self.keeper = None if self.arbitrator is None else ReservationKeeper(
            self.arbitrator, self.reporter, self.queue,
            lambda v: self._is_ours(v.scheduler_name, v.pod.namespace),
        )  # fmt: skip
        predictor = self.policy.predictor
        self.predictions = None if predictor is None else PredictionFeed(
            predictor, self.cache, self.metrics, clock
        )  # fmt: skip
        #: PodGroups, gang Jobs and the pods that claim a gang.
        self.gangs = GangBook(ticks=self.cache.ticks)
        if self.policy.profile.gang_aware:
            self.scheduling.min_resources_of = self.gangs.min_resources
        self.gang_reports = GangReports(self.gangs, api, self.threads, self.metrics, clock)
        self.gang_feed = GangFeed(
            self.gangs, self.gang_reports, self.cache, self.queue, self.policy,
            lambda v: self._is_ours(v.scheduler_name, v.pod.namespace),
            lambda pod, why: self.refusals.append((pod, why)),
        )  # fmt: skip
        rules = settings.preemption_settings()
        ledger = PreemptionLedger(
            api, self.threads, settings.lease_namespace, f"{settings.lease_name}-preemptions",
            clock,
        )  # fmt: skip
        self.preemption = None if rules is None else Preemptions(
            rules, settings.preemption_all_pods, self.cache, self.queue, self.policy, api,
            self.threads, self.reporter, self.metrics, clock,
            lambda v: self._is_ours(v.scheduler_name, v.pod.namespace), ledger,
        )  # fmt: skip
        #: Whether the missing PodGroup CRD was logged.
        self.told_no_crd = False
        #: Whether the first listing found PodGroups served (kopf, which finds the kinds
        #: it watches once at start-up, then watches them); None before it.
        self.pod_groups_at_start: bool | None = None
        #: Set when a listing finds PodGroups served that the first one did not: the
        #: operator's own watch takes them (:mod:`hybrid_operator.k8s.pod_group_watch`).
        self.pod_groups_appeared = asyncio.Event()
        #: Whether a listing was applied yet (the first one restores reservations).
        self.listed_once = False
        #: Training progress from Prometheus, read before each pass (None: not read).
        self.progress: ProgressReader | None = None
        self.inbox: asyncio.Queue[WatchEvent] = asyncio.Queue()
        #: Conversion problems waiting to be posted as Events.
        self.reports: list[tuple[dict[str, str], tuple[Problem, ...]]] = []
        #: Pods of ours that cannot be read, and why, waiting to be told so.
        self.refusals: list[tuple[PendingPod, str]] = []
        #: UIDs of pending pods of ours that cannot be read (counted as pending).
        self.refused: set[str] = set()
        self.leading = elector is None
        #: Set when the cache may have missed events (the watches re-listed, or an API call
        #: could not reach the API server): no pass runs until a listing reconciles it.
        self.relisted = asyncio.Event()
        #: When the cache was last suspected (the cache's ticks).
        self.suspected_at = -math.inf
        #: Kinds whose watch has streamed events since its last listing.
        self.streaming: set[ObjectKind] = set()

    def _shadow(self) -> ShadowRecorder:
        context = ShadowContext(
            self.cache, self.policy.profile, self.policy.name, self.clock,
            lambda: self.metrics_status, self.collector,
        )  # fmt: skip
        return ShadowRecorder(
            self.settings.shadow_of, context, self.api, self.threads, self.metrics,
            self.settings.seed,
        )  # fmt: skip

    @property
    def metrics_status(self) -> str:
        """Where live utilisation stands: live, degraded or unavailable (why), or not
        configured."""
        return str(self.collector.status) if self.collector else "not configured"

    def leader_term(self) -> int | None:
        """The current leadership term, or None while this replica may not act (any thread
        may ask: the elector answers from its monotonic clock and renew deadline)."""
        if self.elector is None:
            return 0
        term = self.elector.epoch
        return term if self.elector.may_act(term) else None

    # -- watch events -------------------------------------------------------------------

    def convert(self, kind: ObjectKind, raw_type: object, body: Body) -> WatchEvent | None:
        """A raw watch event, converted; None (logged, counted) if conversion failed."""
        try:
            return watch_event(kind, raw_type, body, self.settings.default_weight)
        except Exception:  # conversion is total by design; a bug here must not stop anyone
            self.counters.bad_events += 1
            log.exception("could not convert a %s event of a %s", raw_type, kind)
            return None

    def feed(self, kind: ObjectKind, raw_type: object, body: Body) -> None:
        """Convert a raw watch event and hand it to the loop (what the handlers call)."""
        event = self.convert(kind, raw_type, body)
        if event is None:
            return
        if event.type is not WatchType.LISTED:
            self.streaming.add(kind)
        elif kind in self.streaming:
            # A listing after events were streamed: the watch was lost and re-listed.
            self.streaming.discard(kind)
            self.suspect(f"the {kind.value} watch listed again")
        if kind is ObjectKind.NODE and (event.type is WatchType.DELETED or event.node is None):
            # Not a batch interval later: Bindings waiting for the rate limit go meanwhile.
            self.binding.stop_sending_to(event.name)
        self.inbox.put_nowait(event)

    def suspect(self, why: str) -> None:
        """The cache may have missed events: hold passes until a listing begun from now on
        reconciles it."""
        if not self.relisted.is_set():
            log.warning("%s: holding passes until a listing reconciles the cache", why)
        self.suspected_at = self.cache.ticks()
        self.relisted.set()

    def reconciled(self, listed_at: float) -> None:
        """A listing begun at ``listed_at`` (the cache's ticks) was applied: passes go on,
        unless the cache was suspected after the listing began."""
        if listed_at >= self.suspected_at:
            self.relisted.clear()

    def drain(self) -> int:
        """Apply every event waiting in the inbox; returns how many."""
        count = 0
        while not self.inbox.empty():
            self.apply_safely(self.inbox.get_nowait())
            count += 1
        return count

    def apply_safely(self, event: WatchEvent) -> None:
        """Apply one event; one that cannot be applied is logged and never stops the loop."""
        try:
            self.apply(event)
        except Exception:
            self.counters.bad_events += 1
            log.exception(
                "could not apply a %s event for %s %s", event.type, event.kind, event.name
            )

    def apply(self, event: WatchEvent) -> None:
        """Change the cache and the queue as one watch event says; an event older than
        what the cache applied of its object is left out (counted)."""
        if not self.cache.accept(event):
            self.counters.stale_events += 1
            return
        if event.kind is ObjectKind.POD:
            self._pod(event)
        elif event.kind is ObjectKind.NODE:
            self._node(event)
        elif event.kind is ObjectKind.POD_GROUP:
            self._report(event)
            self.gang_feed.pod_group(event)
        elif event.kind is ObjectKind.JOB:
            self.gang_feed.job(event)
        else:
            self._namespace(event)
        self._gauge()

    def _pod(self, event: WatchEvent) -> None:
        view = event.pod
        uid = event.uid
        self.refused.discard(uid)
        # Bound, or assumed: a pod may end before the watch shows its binding.
        had_node = uid in self.cache.bound or self.cache.assumed_on(uid) is not None
        if event.type is WatchType.DELETED or view is None:
            self._report(event)  # an unusable pod is left out, as if it were gone
            self._pod_gone(uid, had_node)
            if view is None and event.type is not WatchType.DELETED:
                self._refused(event)
            return
        view, resolution, changed = self.gang_feed.observe(view)
        self.cache.upsert_pod(view)
        if self.preemption is not None:
            self.preemption.observe(view)
        if self.shadow is not None:
            self.shadow.observe(view)
        ours = self._is_ours(view.scheduler_name, view.pod.namespace)
        if ours and self.predictions is not None:
            self.predictions.observe(view)
        if not view.waiting:
            self.queue.remove(uid)
            # Bound (the assumption became the bound pod) or ended: nothing to send again.
            self.binding.resends.drop(uid)
            self.binding.landings.seen(uid, view.node_name, view.record)
            self.gang_feed.held.pop(uid, None)
            if self.keeper is not None:
                self.keeper.no_longer_waiting(view)
            if had_node and not self.cache.is_placed(uid):
                self.queue.move_all_to_active()  # capacity was freed
            return
        if ours and not self.cache.is_placed(uid):
            self._report(event)
            self.gang_feed.enqueue(view.pod, resolution, changed)

    def _is_ours(self, scheduler_name: str, namespace: str) -> bool:
        return scheduler_name == self.settings.scheduler_name and (
            not self.settings.namespaces or namespace in self.settings.namespaces
        )

    def _refused(self, event: WatchEvent) -> None:
        """A pod of ours that cannot be read: say why on the pod, as for any pod that
        cannot be scheduled (FailedScheduling and PodScheduled=False)."""
        namespace = event.reference.get("namespace", "")
        if event.has_node or not event.uid or not self._is_ours(event.scheduler_name, namespace):
            return
        reasons = "; ".join(p.message for p in event.problems) or "the pod cannot be read"
        self.refused.add(event.uid)
        self.gang_feed.held.pop(event.uid, None)
        stand_in = PendingPod(namespace, event.name, event.uid, {}, 0.0)
        self.refusals.append((stand_in, f"hybrid-scheduler cannot schedule this pod: {reasons}"))

    def _pod_gone(self, uid: str, had_node: bool) -> None:
        self.binding.cancel(uid, CancelReason.POD_GONE)
        self.binding.landings.seen(uid, None, None)
        self.gang_feed.gone(uid)
        if self.predictions is not None:
            self.predictions.gone(uid)
        if self.keeper is not None:
            self.keeper.gone(uid)
        if self.preemption is not None:
            self.preemption.gone(uid)
        self.cache.delete_pod(uid)
        self.queue.remove(uid)
        self.reporter.forget_object(uid)
        if self.shadow is not None:
            self.shadow.forget(uid)
        if had_node:
            self.queue.move_all_to_active()

    def _node(self, event: WatchEvent) -> None:
        if event.type is WatchType.DELETED or event.node is None:
            self._report(event)
            self._node_gone(event.name)
            return
        if self.collector is not None:
            self.collector.addresses.update(event.name, event.node.addresses)
        self._report(event)
        self.cache.upsert_node(event.node.node)
        self.queue.move_all_to_active()

    def _node_gone(self, name: str) -> None:
        if self.collector is not None:
            self.collector.addresses.remove(name)
        called_off = set(self.binding.cancel_on_node(name))
        for pod in self.cache.delete_node(name):
            if pod.uid not in called_off:
                # Assumed there, its binding already sent: the watch shows where it went.
                log.warning("node %s went away right after %s was bound there", name, pod.key)
        self.queue.move_all_to_active()

    def _namespace(self, event: WatchEvent) -> None:
        view = event.namespace
        if event.type is WatchType.DELETED or view is None:
            self._report(event)
            self.enabled_namespaces.gone(event.name)
            self.cache.delete_namespace(event.name)
            if self.preemption is not None:
                self.preemption.namespace(event.name, None)
            return
        self.enabled_namespaces.seen(event.name, view.opted_in)
        if self.preemption is not None:
            self.preemption.namespace(event.name, view.preemptible)
        self.gang_feed.namespace(event.name, view.gang_jobs)
        self._report(event)
        self.cache.upsert_namespace(view.namespace)

    def _report(self, event: WatchEvent) -> None:
        problems = problems_of(event)
        if problems:
            self.reports.append((event.reference, problems))

    async def flush_reports(self) -> None:
        """Post the Events about objects that had problems (at the end of a pass)."""
        reports, self.reports = self.reports, []
        for reference, problems in reports:
            await self.reporter.problems(reference, problems)
        refusals, self.refusals = self.refusals, []
        for pod, message in refusals:
            await self.reporter.unschedulable(pod, message)
        if self.keeper is not None:
            await self.keeper.flush()
        await self.gang_reports.flush()
        await self.binding.tell_landed()

    def _gauge(self) -> None:
        pending = (
            len(self.queue)
            + self.queue.in_flight_count
            + self.queue.resending_count
            + len(self.refused)
            + len(self.gang_feed.held)
        )
        self.metrics.pending.set(pending)

    # -- convenience for listings and tests ---------------------------------------------

    def on_event(self, kind: ObjectKind, event_type: str | None, body: Body) -> None:
        """Convert and apply a raw event at once (listings and tests)."""
        event = self.convert(kind, event_type, body)
        if event is not None:
            self.apply_safely(event)

    def on_pod(self, event_type: str | None, body: Body) -> None:
        """Apply a raw pod event at once."""
        self.on_event(ObjectKind.POD, event_type, body)

    def on_node(self, event_type: str | None, body: Body) -> None:
        """Apply a raw node event at once."""
        self.on_event(ObjectKind.NODE, event_type, body)

    def on_namespace(self, event_type: str | None, body: Body) -> None:
        """Apply a raw namespace event at once."""
        self.on_event(ObjectKind.NAMESPACE, event_type, body)

    def reconcile(self, listing: Listing, listed_at: float) -> None:
        """Apply a full listing begun at ``listed_at`` (the cache's ticks), dropping what
        it no longer shows: objects deleted while a watch was down."""
        self._pod_group_crd(listing.pod_groups is not None)
        converted = [
            *(self.convert(ObjectKind.NAMESPACE, None, b) for b in listing.namespaces),
            *(self.convert(ObjectKind.NODE, None, b) for b in listing.nodes),
            *(self.convert(ObjectKind.POD_GROUP, None, b) for b in listing.pod_groups or ()),
            *(self.convert(ObjectKind.JOB, None, b) for b in listing.jobs),
            *(self.convert(ObjectKind.POD, None, b) for b in listing.pods),
        ]
        events = [e for e in converted if e is not None]
        for event in events:
            # The newer of the listing and what the cache applied wins: by resourceVersion
            # (ClusterCache.accept) when the object has one, for an event applied after the
            # listing began may still be older than it (it lagged); else an object whose
            # event came after the listing began is taken to be newer than it.
            if event.version is not None or not self.cache.seen_since(event, listed_at):
                self.apply_safely(event)
        if not self.listed_once and self.keeper is not None:
            self.keeper.restore((e.pod for e in events if e.pod is not None), self.clock())
        self.listed_once = True
        pods = {e.uid for e in events if e.kind is ObjectKind.POD}
        nodes = {e.name for e in events if e.kind is ObjectKind.NODE}
        gone = self.cache.reconcile(pods, nodes, listed_at)
        for uid in gone.pods:
            self._pod_gone(uid, had_node=True)
        for name in gone.nodes:
            self._node_gone(name)
        if listing.pod_groups is not None:
            listed = {
                (e.reference.get("namespace", ""), e.name)
                for e in events
                if e.kind is ObjectKind.POD_GROUP
            }
            for key in self.gangs.unlisted_groups(listed, listed_at):
                self.gang_feed.group_gone(*key)
        if gone.pods or gone.nodes:
            log.warning(
                "reconciled with a listing: %d pods and %d nodes were gone",
                len(gone.pods),
                len(gone.nodes),
            )
        self._gauge()

    def _pod_group_crd(self, served: bool) -> None:
        """Say once that PodGroups are not served; note when they are served after the
        first listing found none."""
        if self.pod_groups_at_start is None:
            self.pod_groups_at_start = served
        if not served and not self.told_no_crd:
            self.told_no_crd = True
            log.warning(
                "the PodGroup CRD (podgroups.scheduling.x-k8s.io) is not installed: PodGroups "
                "are not read (pods that name one wait for it); gangs of Jobs still work"
            )
        elif served and not self.pod_groups_at_start and not self.pod_groups_appeared.is_set():
            log.info("the PodGroup CRD is installed now: watching PodGroups")
            self.pod_groups_appeared.set()

    # -- the pass -----------------------------------------------------------------------

    def decide(self) -> list[Decision]:
        """One scheduling cycle; its placements get their binding tickets at once. The
        Bindings whose outcome was unknown are sent again first; with preemption on,
        preemptors whose victims are gone are bound next, and the pods the pass left
        waiting may preempt afterwards."""
        self.drain()
        resent = self.binding.resends.due()
        ready = self.preemption.due() if self.preemption is not None else []
        notes = self.preemption.take_annotations() if self.preemption is not None else {}
        try:
            decisions = [*resent, *ready, *self.scheduling.decide()]
        except Exception:
            for d in resent:  # sent by no one after all: again after a back-off
                self.binding.resends.wait(d.pod.uid)
            for d in ready:  # decided by no one after all: back to the queue
                self.cache.forget(d.pod.uid)
                self.queue.back_off(d.pod.uid, self.clock())
            raise
        finally:
            self._gauge()
        self.binding.notices.update(self.scheduling.notices)
        self.binding.annotations.update(notes)
        self.gangs.note(gang_outcomes(decisions))
        term = self.leader_term()
        self.binding.issue(decisions, -1 if term is None else term)
        if self.preemption is not None and term is not None:
            try:
                self.preemption.plan(decisions, term)
            except Exception:  # the pass's decisions are settled all the same
                log.exception("planning preemptions failed")
        return decisions

    def use_progress(self, client: PromClient) -> None:
        """Read training progress from ``client`` before each pass (reserving policies;
        ``progress_query``, ignored series counted by reason)."""
        if self.predictions is None or not self.settings.progress_query:
            return
        self.progress = ProgressReader(
            client, self.settings.progress_query, self.settings.metrics_staleness_s,
            self.clock, lambda why: self.metrics.progress_ignored.labels(why.value).inc(),
        )  # fmt: skip

    async def read_progress(self) -> None:
        """Read training progress (in a worker thread) and tell the predictor."""
        if self.progress is None or self.predictions is None:
            return
        reports = await asyncio.to_thread(self.progress.read)
        self.predictions.progress(reports)

    async def read_ledger(self) -> None:
        """With preemption on, read the preemption counts once per leadership term (once
        without leader election) before the pass that may plan
        (:mod:`hybrid_operator.preemption_ledger`)."""
        term = self.leader_term()
        if self.preemption is not None and term is not None:
            await self.preemption.ledger.read(term)

    async def schedule_once(self) -> list[Decision]:
        """One pass: decide, then bind placements concurrently and report every outcome."""
        await self.read_ledger()
        decisions = self.decide()
        await self.settle_all(decisions)
        return decisions

    async def settle_all(self, decisions: list[Decision]) -> None:
        """Bind (or report) every decision of a pass."""
        holds = self.preemption.holds if self.preemption is not None else {}
        settled = []
        for d in decisions:
            if d.placed or d.pod.uid not in holds:
                settled.append(d)
            else:  # a preemptor held on a node is told by the preemption
                self.binding.skip(d)
        await asyncio.gather(*(self.binding.settle(d) for d in settled))
        if self.preemption is not None:
            await carry_out(self.preemption)
        self._gauge()
        await self.flush_reports()
        if self.shadow is not None:
            await self.shadow.flush()

    def _leadership(self) -> bool:
        """Whether to run passes now; bindings on their way are called off when it ends.
        A term begins with a listing: what the former leader bound may not have reached
        this replica's watches yet."""
        leading = self.leader_term() is not None
        if leading and not self.leading:
            self.suspect("this replica began leading")
        if not leading and self.leading:
            self.binding.cancel_all(CancelReason.NOT_LEADER)
            if self.preemption is not None:
                self.preemption.release_all(CancelReason.NOT_LEADER.value)
        self.leading = leading
        return leading

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Pass after pass, every ``batch_interval_s``, until ``stop`` is set.

        A pass's bindings go on while the next pass decides, as kube-scheduler's binding
        cycle runs beside its next scheduling cycle: the placements are assumed in the
        cache, so the next pass counts them. At most ``MAX_PASSES_IN_FLIGHT`` passes bind
        at once.
        """
        in_flight: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                self.drain()
                leading = self._leadership()
                if not leading:
                    # Problems are told by the leader; listings bring them up again. The
                    # Bindings of this replica seen to land are its own to tell.
                    self.reports.clear()
                    self.refusals.clear()
                    if self.binding.landings.due:
                        task = asyncio.create_task(self.binding.tell_landed())
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                elif not self.relisted.is_set():
                    while len(in_flight) >= MAX_PASSES_IN_FLIGHT:
                        await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    await self.read_progress()
                    await self.read_ledger()
                    decisions = self.decide()
                    # Shadow records, problem Events and PodGroup status are written at the
                    # end of a pass.
                    if (
                        decisions or self.shadow is not None or self.reports or self.refusals
                        or self.gang_reports.due() or self.binding.landings.due
                        or (self.preemption is not None and self.preemption.busy)
                    ):  # fmt: skip
                        task = asyncio.create_task(self._settle_pass(decisions))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
            except Exception:  # one bad pass must not end scheduling
                log.exception("scheduling pass failed")
            self.metrics.ready = True
            pause = max(self.settings.batch_interval_s - (time.perf_counter() - started), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
        if in_flight:
            await asyncio.wait(in_flight)

    async def _settle_pass(self, decisions: list[Decision]) -> None:
        try:
            await self.settle_all(decisions)
        except Exception:  # settle() already put every pod back; keep scheduling
            log.exception("binding a pass failed")
