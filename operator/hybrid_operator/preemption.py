"""Preemption in the operator: after a pass, on the leader, a pod the pass left waiting
may take back room from running pods that opted in, with the API calls kube-scheduler's
DefaultPreemption makes.

The plan is the policy core's (:func:`~hybrid_policy.preemption.phase.plan_preemptions`,
the same code the simulator runs), on the nodes the pod would fit but for room. For each
plan the preemptor leaves the queue and is *held* on the node in the cache, so that no
other pod takes the room; each victim gets the ``DisruptionTarget`` condition, then is
deleted with its own grace period and a UID precondition; the preemptor gets
``status.nominatedNodeName``; both get an Event (the calls:
:mod:`hybrid_operator.preemption_calls`). A later pass binds the preemptor once its
victims are gone. Whatever fails (a condition or deletion refused, the node gone,
victims still there :data:`HOLD_MARGIN_S` after their grace periods), the hold ends, the
preemptor goes back to the queue with the reason (FailedScheduling, PodScheduled=False)
and a later pass plans again, no sooner than :data:`RETRY_AFTER_S`. A pod is never bound
twice: a held pod is decided by no pass.

Who may be a victim: a running pod of ours (other schedulers' pods never are) that opted
in by annotation, by its namespace's label, or by the ``preemption_all_pods`` setting
(the pod's own annotation wins). Its preemptions are counted per controller in memory:
the victim itself is deleted, so a count on it would go with it, and writing one on every
kind of controller would need write access to all of them; a restarted operator starts
counting again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.api import ClusterApi
from hybrid_operator.k8s.calls import ApiThreads
from hybrid_operator.k8s.views import PodView
from hybrid_operator.observability import OperatorMetrics
from hybrid_operator.reporting import Reporter
from hybrid_operator.reservations import held_arbitrator
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, Decision
from hybrid_policy.framework.paths import PassPath
from hybrid_policy.framework.queue import SchedulingQueue
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.framework.status import Status
from hybrid_policy.policies import Policy
from hybrid_policy.preemption.model import PreemptionPlan, PreemptionReason, RunningPod
from hybrid_policy.preemption.phase import PreemptionSettings, plan_preemptions
from hybrid_policy.resources import GPU

log = logging.getLogger("hybrid_scheduler")
#: Seconds a preemptor holds its node while its victims are still there, beyond the
#: longest of their grace periods.
HOLD_MARGIN_S = 120.0
#: Seconds a preemptor whose preemption failed waits before it may preempt again.
RETRY_AFTER_S = 10.0
#: Waiting pods of each team the phase looks at per pass, in queue order.
PER_TEAM = 4
#: The path decision records show for a preemptor bound to the room it made.
PREEMPTION_PATH = PassPath("preemption")


@dataclass
class Hold:
    """A preemptor held on ``node`` while its victims go."""

    pod: PendingPod
    node: str
    plan: PreemptionPlan
    since_s: float
    #: What the preemptor and each victim are told.
    preemptor_message: str
    victim_message: str
    #: How long the victims may take to go: their longest grace period and a margin.
    timeout_s: float = HOLD_MARGIN_S
    #: Every victim's deletion was accepted.
    deleted: bool = False


def _share_text(snapshot: ClusterSnapshot, namespace: str, active: set[str]) -> str:
    """``team-a holds 0.31 of an entitled 0.20`` (of the cluster's GPUs)."""
    gpu = snapshot.index[GPU]
    total = float(snapshot.total_allocatable[gpu])
    held = snapshot.namespace_allocated.get(namespace)
    holds = float(held[gpu]) / total if held is not None and total > 0 else 0.0
    weights = sum(snapshot.weight_of(ns) for ns in active | {namespace}) or 1.0
    entitled = snapshot.weight_of(namespace) / weights
    return f"{namespace} holds {holds:.2f} of an entitled {entitled:.2f}"


class Preemptions:
    """The phase's state between passes: running pods' marks, holds, failures to tell."""

    def __init__(
        self,
        settings: PreemptionSettings,
        all_pods: bool,
        cache: ClusterCache,
        queue: SchedulingQueue,
        policy: Policy,
        api: ClusterApi,
        threads: ApiThreads,
        reporter: Reporter,
        metrics: OperatorMetrics,
        clock: Callable[[], float],
        is_ours: Callable[[PodView], bool],
    ) -> None:
        self.settings = settings
        self.all_pods = all_pods
        self.cache = cache
        self.queue = queue
        self.policy = policy
        self.api = api
        self.threads = threads
        self.reporter = reporter
        self.metrics = metrics
        self.clock = clock
        self.is_ours = is_ours
        self.rng = np.random.default_rng(0)
        #: Whether bound preemptors' ``nominatedNodeName`` is cleared here (no keeper).
        self.clears_nominations = held_arbitrator(policy) is None
        #: Views of the pods that hold a node (what a victim is read from).
        self.views: dict[str, PodView] = {}
        self.preemptible_namespaces: set[str] = set()
        #: When each waiting pod was first seen waiting.
        self.pending_since: dict[str, float] = {}
        #: Preemptions so far per controller UID (a pod's own UID without one).
        self.counts: dict[str, int] = {}
        self.holds: dict[str, Hold] = {}
        #: Holds planned this pass, whose calls are still to be made.
        self.started: list[Hold] = []
        #: Failed preemptors: not to preempt again before this time.
        self.not_before: dict[str, float] = {}
        #: Preemptors told why their preemption ended, and the bound ones to clear.
        self.to_tell: list[tuple[PendingPod, str]] = []
        self.to_clear: dict[str, PendingPod] = {}

    # -- what the watches say -----------------------------------------------------------

    def observe(self, view: PodView) -> None:
        """A pod was listed, added or changed."""
        uid = view.uid
        if view.holds_node:
            self.views[uid] = view
        else:
            self.views.pop(uid, None)
        if view.waiting:
            self.pending_since.setdefault(uid, self.clock())
            return
        self.pending_since.pop(uid, None)
        if self.holds.pop(uid, None) is not None:
            self.cache.unhold(uid)  # bound by someone else, or ended
        # A reserving policy's keeper clears the field of every bound pod of ours itself.
        clears = self.clears_nominations and uid in self.reporter.nominated
        if clears and view.node_name and view.nominated_node:
            self.to_clear[uid] = view.pod

    def namespace(self, name: str, preemptible: bool | None) -> None:
        """A namespace's label was seen (None: the namespace went)."""
        if preemptible:
            self.preemptible_namespaces.add(name)
        else:
            self.preemptible_namespaces.discard(name)

    def gone(self, uid: str) -> None:
        """The pod was deleted."""
        self.views.pop(uid, None)
        self.pending_since.pop(uid, None)
        self.not_before.pop(uid, None)
        self.to_clear.pop(uid, None)
        if self.holds.pop(uid, None) is not None:
            self.cache.unhold(uid)

    @property
    def busy(self) -> bool:
        """Whether calls or reports are waiting to be made."""
        return bool(self.started or self.to_tell or self.to_clear)

    # -- who may be a victim ------------------------------------------------------------

    def opted_in(self, view: PodView) -> bool:
        """Ours, and opted in by annotation, else namespace label, else the setting."""
        if not self.is_ours(view):
            return False
        if view.marks.preemptible is not None:
            return view.marks.preemptible
        return view.pod.namespace in self.preemptible_namespaces or self.all_pods

    def running(self) -> list[RunningPod]:
        """Every pod bound to a node as preemption sees it."""
        out = []
        for uid, placement in self.cache.bound.items():
            view = self.views.get(uid)
            if view is None:
                continue
            pod = placement.pod
            out.append(
                RunningPod(
                    pod.namespace, pod.name, uid, placement.node, pod.requests,
                    view.started_at_s or placement.since_s, pod.priority,
                    opted_in=self.opted_in(view) and not view.terminating,
                    preemptions=self.counts.get(view.marks.owner_uid, 0),
                    checkpoint_interval_s=view.marks.checkpoint_interval_s,
                    gang=pod.gang_key,
                )
            )  # fmt: skip
        return out

    # -- the phase ----------------------------------------------------------------------

    def candidates(self, decisions: Sequence[Decision], now_s: float) -> list[PendingPod]:
        """The first waiting single pods of each team in queue order."""
        sort_key = self.policy.profile.queue_sort.sort_key
        waiting = {d.pod.uid: d.pod for d in decisions if not d.placed}
        waiting.update((p.uid, p) for p in self.queue.pending())
        heads: dict[str, list[PendingPod]] = {}
        for pod in sorted(waiting.values(), key=sort_key):
            team = heads.setdefault(pod.namespace, [])
            allowed = self.not_before.get(pod.uid, 0.0) <= now_s
            if pod.gang is None and allowed and len(team) < PER_TEAM:
                team.append(pod)
        return [pod for team in heads.values() for pod in team]

    def plan(self, decisions: Sequence[Decision]) -> int:
        """Plan after a pass (its placements assumed); returns how many plans started."""
        now = self.clock()
        left = self.candidates(decisions, now)
        if not left or not self.cache.bound:
            return 0
        snapshot = self.cache.snapshot(now)
        cycle = BatchCycle(self.policy.profile, snapshot, self.rng, explain=False)
        masks = {p.uid: cycle.nodes_but_for_room(p) for p in left}
        running = self.running()
        plans = plan_preemptions(
            snapshot, left, masks, running, self.pending_since, now, self.settings
        )
        active = {p.namespace for p in left} | {p.namespace for p in running}
        started = 0
        for made in plans:
            # The operator offers pods alone (no gang preemptors): one pod per plan.
            if isinstance(made.plan, PreemptionPlan) and len(made.binds) == 1:
                self._start(made.binds[0][0], made.plan, snapshot, active, now)
                started += 1
        return started

    def _start(
        self,
        pod: PendingPod,
        plan: PreemptionPlan,
        snapshot: ClusterSnapshot,
        active: set[str],
        now_s: float,
    ) -> None:
        victims = ", ".join(v.key for v in plan.victims)
        if plan.reason is PreemptionReason.RECLAIM:
            teams = sorted({v.namespace for v in plan.victims})
            why = "; ".join(_share_text(snapshot, ns, active) for ns in teams)
            mine = _share_text(snapshot, pod.namespace, active)
        else:
            why = f"{plan.reason.value}: priority {pod.priority}"
            mine = why
        victim_message = f"preempted by {pod.key} on {plan.node}: {why}"
        preemptor_message = (
            f"preempting {victims} on {plan.node} ({plan.reason.value}: {mine}); "
            "waiting for them to go"
        )
        views = [self.views.get(v.uid) for v in plan.victims]
        grace = max((v.marks.grace_period_s for v in views if v is not None), default=0.0)
        hold = Hold(
            pod, plan.node, plan, now_s, preemptor_message, victim_message, grace + HOLD_MARGIN_S
        )
        self.queue.remove(pod.uid)
        self.cache.hold(pod, plan.node)
        self.holds[pod.uid] = hold
        self.started.append(hold)
        for victim in plan.victims:
            view = self.views.get(victim.uid)
            owner = view.marks.owner_uid if view is not None else victim.uid
            self.counts[owner] = self.counts.get(owner, 0) + 1
        self.metrics.preemptions.labels(result="started").inc()
        log.info("%s: %s", pod.key, preemptor_message)

    def due(self) -> list[Decision]:
        """Bind the preemptors whose victims are gone (each assumed on its node and in
        flight in the queue); end the holds that can no longer succeed."""
        now = self.clock()
        ready = []
        for uid, hold in list(self.holds.items()):
            if hold.node not in self.cache.nodes:
                self.release(uid, f"node {hold.node} went away")
            elif not hold.deleted or any(v.uid in self.cache.bound for v in hold.plan.victims):
                if now - hold.since_s > hold.timeout_s:
                    self.release(uid, f"its victims were still on {hold.node} after "
                                      f"{hold.timeout_s:.0f} s")  # fmt: skip
            else:
                ready.append(self._ready(hold))
        return ready

    def _ready(self, hold: Hold) -> Decision:
        uid = hold.pod.uid
        self.holds.pop(uid)
        self.cache.unhold(uid)
        self.queue.add(hold.pod)
        self.queue.take([uid])
        self.cache.assume(hold.pod, hold.node)
        self.metrics.preemptions.labels(result="bound").inc()
        return Decision(hold.pod, hold.node, Status.success(), PREEMPTION_PATH)

    def release(self, uid: str, why: str) -> None:
        """End a hold: the preemptor waits in the queue again, told why."""
        hold = self.holds.pop(uid, None)
        if hold is None:
            return
        self.cache.unhold(uid)
        self.queue.add(hold.pod)
        self.not_before[uid] = self.clock() + RETRY_AFTER_S
        self.metrics.preemptions.labels(result="failed").inc()
        message = f"preemption on {hold.node} failed: {why}; waiting, to be planned again"
        log.warning("%s: %s", hold.pod.key, message)
        self.to_tell.append((hold.pod, message))

    def release_all(self, why: str) -> None:
        """End every hold (leadership lost)."""
        for uid in list(self.holds):
            self.release(uid, why)
