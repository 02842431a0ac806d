"""Preemption in the operator: after a pass, on the leader, a pod or a gang the pass left
waiting may take back room from running pods that opted in, with the API calls
kube-scheduler's DefaultPreemption makes.

The plan is the policy core's (:func:`~hybrid_policy.preemption.phase.plan_preemptions`,
the same code the simulator runs), on the nodes each pod would fit but for room. A
waiting gang (every waiting member of it) is offered as one preemptor, counted once among
its team's :data:`PER_TEAM`; a pod whose ``preemptionPolicy`` is ``Never`` preempts
nobody, nor does a gang with such a member. For each plan the preemptors leave the queue
and are *held* on their nodes in the cache, one hold per plan
(:mod:`hybrid_operator.preemption_holds`), so that no other pod takes the room; each
victim (each once) gets the ``DisruptionTarget`` condition, then is deleted with its own
grace period and a UID precondition; each preemptor gets ``status.nominatedNodeName``;
all get an Event (the calls: :mod:`hybrid_operator.preemption_calls`). A later pass binds
every preemptor of the plan, in the same pass, once all its victims are gone; a gang
member whose binding fails then joins every pass until the gang is whole (the
scheduling cycle's rule). Whatever fails (a condition or deletion refused, a node gone, a
member deleted, leadership lost, victims still there :data:`HOLD_MARGIN_S` after their
grace periods), the whole hold ends: every preemptor still waiting goes back to the queue
with the reason (FailedScheduling, PodScheduled=False) and a later pass plans again, no
sooner than :data:`RETRY_AFTER_S`. A pod is never bound twice: a held pod is decided by
no pass.

Who may be a victim: a running pod of ours (other schedulers' pods never are) that opted
in by annotation, by its namespace's label, or by the ``preemption_all_pods`` setting
(the pod's own annotation wins). Its preemptions are counted per controller in a
ConfigMap (:mod:`hybrid_operator.preemption_ledger`), read at the start of each
leadership term before any plan, and written after a pass that planned, before any victim
is touched: a restarted operator, or a standby that takes over, goes on counting. With
the take-back guard (``guard=takeback``, the default) the phase also hears who took from
whom: each bound preemptor's Binding writes the teams it took from on the pod, and the
owners owed are kept with the counts (:mod:`hybrid_operator.preemption_takes`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.api import ClusterApi
from hybrid_operator.k8s.calls import ApiThreads
from hybrid_operator.k8s.preempt import TOOK_FROM_ANNOTATION, took_from_value
from hybrid_operator.k8s.views import PodView
from hybrid_operator.observability import OperatorMetrics
from hybrid_operator.preemption_holds import HOLD_MARGIN_S, Hold, new_hold
from hybrid_operator.preemption_ledger import PreemptionLedger
from hybrid_operator.preemption_takes import TakeMemory
from hybrid_operator.reporting import Reporter
from hybrid_operator.reservations import held_arbitrator
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, Decision
from hybrid_policy.framework.paths import PassPath
from hybrid_policy.framework.queue import SchedulingQueue
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.framework.status import Status
from hybrid_policy.policies import Policy
from hybrid_policy.preemption.guard import Guard
from hybrid_policy.preemption.model import RunningPod
from hybrid_policy.preemption.phase import PhasePlan, PreemptionSettings, plan_preemptions

__all__ = ["HOLD_MARGIN_S", "PER_TEAM", "RETRY_AFTER_S", "Hold", "Preemptions"]
log = logging.getLogger("hybrid_scheduler")
#: Seconds a preemptor whose preemption failed waits before it may preempt again.
RETRY_AFTER_S = 10.0
#: Waiting units (a pod alone, or a gang) of each team the phase looks at per pass, in
#: queue order.
PER_TEAM = 4
#: The path decision records show for a preemptor bound to the room it made.
PREEMPTION_PATH = PassPath("preemption")


def _unit(pod: PendingPod) -> str | tuple[str, str]:
    """What a pod preempts as: itself, or its gang."""
    return pod.uid if pod.gang_key is None else pod.gang_key


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
        ledger: PreemptionLedger,
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
        #: Preemptions so far per controller UID (a pod's own UID without one).
        self.ledger = ledger
        self.rng = np.random.default_rng(0)
        #: Whether bound preemptors' ``nominatedNodeName`` is cleared here (no keeper).
        self.clears_nominations = held_arbitrator(policy) is None
        #: Views of the pods that hold a node (what a victim is read from).
        self.views: dict[str, PodView] = {}
        self.preemptible_namespaces: set[str] = set()
        #: When each waiting pod was first seen waiting.
        self.pending_since: dict[str, float] = {}
        #: Pods whose ``preemptionPolicy`` is ``Never``.
        self.never: set[str] = set()
        #: The controller UID (else its own) of every pod in the cache, by pod UID.
        self.owners: dict[str, str] = {}
        #: The hold of each held preemptor (a gang's members share one).
        self.holds: dict[str, Hold] = {}
        #: Holds planned this pass, whose calls are still to be made.
        self.started: list[Hold] = []
        #: Failed preemptors: not to preempt again before this time.
        self.not_before: dict[str, float] = {}
        #: Preemptors told why their preemption ended, and the bound ones to clear.
        self.to_tell: list[tuple[PendingPod, str]] = []
        self.to_clear: dict[str, PendingPod] = {}
        #: What ``guard=takeback`` reads: who took from whom, who waits (kept only then;
        #: the owed owners with the counts, in the ledger).
        self.takes = TakeMemory(waiting=ledger.owed)
        self.guarded = settings.guard is Guard.TAKEBACK
        #: The annotations the Bindings of preemptors due this pass carry, by pod UID.
        self.binding_annotations: dict[str, dict[str, str]] = {}

    # -- what the watches say -----------------------------------------------------------

    def observe(self, view: PodView) -> None:
        """A pod was listed, added or changed."""
        uid = view.uid
        self.owners[uid] = view.marks.owner_uid or uid
        if view.holds_node:
            self.views[uid] = view
            self.takes.runs(uid, self.owners[uid])
        else:
            self.views.pop(uid, None)
        if view.marks.never_preempts:
            self.never.add(uid)
        else:
            self.never.discard(uid)
        if view.waiting:
            self.pending_since.setdefault(uid, self.clock())
            return
        self.pending_since.pop(uid, None)
        hold = self.holds.get(uid)
        if hold is not None:  # bound by someone else, or ended
            self.release(hold, f"{view.pod.key} no longer waits", leaving=uid)
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
        """The pod was deleted: its hold ends (a gang's other members wait again)."""
        self.views.pop(uid, None)
        self.owners.pop(uid, None)
        self.takes.gone(uid)
        self.pending_since.pop(uid, None)
        self.never.discard(uid)
        self.not_before.pop(uid, None)
        self.to_clear.pop(uid, None)
        hold = self.holds.get(uid)
        if hold is not None:
            key = next(p.key for p in hold.pods if p.uid == uid)
            self.release(hold, f"{key} was deleted", leaving=uid)

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
                    preemptions=self.ledger.count(view.marks.owner_uid),
                    checkpoint_interval_s=view.marks.checkpoint_interval_s,
                    gang=pod.gang_key,
                    took_from=self.takes.took_from(uid) | view.marks.took_from,
                )
            )  # fmt: skip
        return out

    # -- the phase ----------------------------------------------------------------------

    def candidates(self, decisions: Sequence[Decision], now_s: float) -> list[PendingPod]:
        """The first :data:`PER_TEAM` waiting units of each team in queue order: a pod
        alone, or every waiting member of a gang (counted once, where its first member
        stands). A unit with a pod that may not preempt again yet is left out whole."""
        sort_key = self.policy.profile.queue_sort.sort_key
        waiting = {d.pod.uid: d.pod for d in decisions if not d.placed}
        waiting.update((p.uid, p) for p in self.queue.pending())
        barred = {_unit(p) for p in waiting.values() if self.not_before.get(p.uid, 0.0) > now_s}
        heads: dict[str, list[PendingPod]] = {}
        units: dict[str, set[str | tuple[str, str]]] = {}
        for pod in sorted(waiting.values(), key=sort_key):
            unit = _unit(pod)
            team, seen = heads.setdefault(pod.namespace, []), units.setdefault(pod.namespace, set())
            if unit not in barred and (unit in seen or len(seen) < PER_TEAM):
                seen.add(unit)
                team.append(pod)
        return [pod for team in heads.values() for pod in team]

    def plan(self, decisions: Sequence[Decision], term: int) -> int:
        """Plan after a pass (its placements assumed) in leadership term ``term``, once the
        counts were read in it; returns how many plans started."""
        if not self.ledger.ready(term):
            return 0
        now = self.clock()
        left = self.candidates(decisions, now)
        if not left or not self.cache.bound:
            return 0
        snapshot = self.cache.snapshot(now)
        cycle = BatchCycle(self.policy.profile, snapshot, self.rng, explain=False)
        masks = {p.uid: cycle.nodes_but_for_room(p) for p in left}
        running = self.running()
        never = {p.uid for p in left if p.uid in self.never}
        owed = self._owed(now) if self.guarded else None
        plans = plan_preemptions(
            snapshot, left, masks, running, self.pending_since, now, self.settings, never=never,
            owed=owed,
        )  # fmt: skip
        active = {p.namespace for p in left} | {p.namespace for p in running}
        for made in plans:
            self._start(made, snapshot, active, now)
        return len(plans)

    def _start(
        self, made: PhasePlan, snapshot: ClusterSnapshot, active: set[str], now_s: float
    ) -> None:
        """Hold every preemptor of the plan on its node; the calls go after the pass."""
        members = tuple((pod, snapshot.nodes[row].name) for pod, row in made.binds)
        views = [self.views.get(v.uid) for v in made.victims]
        grace = max((v.marks.grace_period_s for v in views if v is not None), default=0.0)
        hold = new_hold(made.plan, members, snapshot, active, now_s, grace + HOLD_MARGIN_S)
        for pod, node in members:
            self.queue.remove(pod.uid)
            self.cache.hold(pod, node)
            self.holds[pod.uid] = hold
        self.started.append(hold)
        owners = {self.owner_of(v.uid) for v in hold.victims}
        for owner in owners:  # a controller's pods taken in one plan count as one preemption
            self.ledger.add(owner, now_s)
        if self.guarded:
            self._remember(hold)
        self.metrics.preemptions.labels(result="started").inc()
        log.info("%s", hold.logged(hold.preemptor_message))

    def _remember(self, hold: Hold) -> None:
        """The victims' owners wait from now on, owed by the preemptors' team."""
        taken = ((v, self.owner_of(v.uid)) for v in hold.victims)
        self.takes.planned(hold.pods[0].namespace, taken, self._holding())

    def take_annotations(self) -> dict[str, dict[str, str]]:
        """The annotations the Bindings of the preemptors made due since the last call
        carry (the teams they took from), by pod UID; handed over once."""
        notes, self.binding_annotations = self.binding_annotations, {}
        return notes

    def _owed(self, now_s: float) -> Mapping[str, frozenset[str]]:
        """Per team, the teams that took a job of it that still waits."""
        return self.takes.owed(self.present_owners(), self._holding(), now_s)

    def _holding(self) -> dict[str, set[str]]:
        """Per owner, its pods that hold a node now."""
        holding: dict[str, set[str]] = {}
        for uid in self.views:
            holding.setdefault(self.owner_of(uid), set()).add(uid)
        return holding

    def owner_of(self, uid: str) -> str:
        """The controller UID of pod ``uid`` (its own UID without one, or if unseen)."""
        return self.owners.get(uid, uid)

    def present_owners(self) -> set[str]:
        """The owners the cache holds a pod of now."""
        return set(self.owners.values())

    def records(self) -> list[Hold]:
        """Every hold, once (a gang's is shared by its members)."""
        return list({id(h): h for h in self.holds.values()}.values())

    def holding(self, hold: Hold) -> bool:
        """Whether ``hold`` still holds its preemptors."""
        return self.holds.get(hold.pods[0].uid) is hold

    def due(self) -> list[Decision]:
        """Bind the preemptors whose victims are all gone, every member of a gang in this
        same pass (each assumed on its node and in flight in the queue); end the holds
        that can no longer succeed."""
        now = self.clock()
        ready = []
        for hold in self.records():
            missing = [n for n in hold.nodes if n not in self.cache.nodes]
            staying = [v for v in hold.victims if v.uid in self.cache.bound]
            if missing:
                self.release(hold, f"node {missing[0]} went away")
            elif hold.deleted and not staying:
                ready.extend(self._ready(hold))
            elif now - hold.since_s > hold.timeout_s:
                where = ", ".join(dict.fromkeys(v.node for v in staying)) or ", ".join(hold.nodes)
                self.release(hold, f"its victims were still on {where} after "
                                   f"{hold.timeout_s:.0f} s")  # fmt: skip
        return ready

    def _drop(self, hold: Hold) -> bool:
        """Stop holding every preemptor of ``hold``; False if it held none any more."""
        if not self.holding(hold):
            return False
        for pod in hold.pods:
            self.holds.pop(pod.uid, None)
            self.cache.unhold(pod.uid)
        return True

    def _ready(self, hold: Hold) -> list[Decision]:
        self._drop(hold)
        if self.guarded:
            teams = self.takes.bound((pod.uid for pod in hold.pods), hold.victims)
            others = teams - {hold.pods[0].namespace}
            if others:
                note = {TOOK_FROM_ANNOTATION: took_from_value(others)}
                self.binding_annotations.update((pod.uid, note) for pod in hold.pods)
        out = []
        for pod, node in hold.members:
            self.queue.add(pod)
            self.queue.take([pod.uid])
            self.cache.assume(pod, node)
            out.append(Decision(pod, node, Status.success(), PREEMPTION_PATH))
        self.metrics.preemptions.labels(result="bound").inc()
        return out

    def release(self, hold: Hold, why: str, leaving: str | None = None) -> None:
        """End a hold: every preemptor of it (but ``leaving``, deleted or no longer
        waiting) waits in the queue again, told why, and preempts no sooner than
        :data:`RETRY_AFTER_S`."""
        if not self._drop(hold):
            return
        staying = [pod for pod in hold.pods if pod.uid != leaving]
        if not staying:
            return  # a pod alone that went or was bound elsewhere: nobody to tell
        message = hold.failure(why)
        self.metrics.preemptions.labels(result="failed").inc()
        log.warning("%s", hold.logged(message))
        for pod in staying:
            self.queue.add(pod)
            self.not_before[pod.uid] = self.clock() + RETRY_AFTER_S
            self.to_tell.append((pod, message))

    def release_all(self, why: str) -> None:
        """End every hold (leadership lost)."""
        for hold in self.records():
            self.release(hold, why)
