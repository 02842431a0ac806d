"""The scheduling cycle: take a batch from the queue, decide on a snapshot, assume.

It runs the policy's profile (the same code the simulator runs) on a snapshot of the
cache with live utilisation applied, and assumes every placement in the cache, so the next
pass counts it before the watch shows the binding. Nothing is bound here. If anything
raises, every pod of the batch goes back to the queue with a back-off and no assumption
is left behind.

With a reserving policy, every pod that holds a reservation joins every batch, backing
off or parked as it may be (its node is held only while it is decided), and each pod
left pending with a node held gets a
:class:`~hybrid_operator.reservations.ReservationNotice` for the reporter.

A gang is never split by the batch limit: a batch with one pod of a gang takes every
queued pod of it, and a gang left short of its ``min_member`` by a binding that failed
midway joins every pass until it is whole (the snapshot counts its bound members).
The pods of a gang whose PodGroup's ``minResources`` the cluster lacks are left pending
before the policy sees the batch (:mod:`hybrid_operator.gang_resources`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from hybrid_operator.cache import ClusterCache
from hybrid_operator.gang_resources import MinResourcesOf, hold_out
from hybrid_operator.observability import OperatorMetrics
from hybrid_operator.reservations import ReservationNotice, held_arbitrator, notices
from hybrid_operator.utilisation import UtilisationCollector, apply_utilisation
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.queue import SchedulingQueue
from hybrid_policy.framework.snapshot import ClusterSnapshot
from hybrid_policy.policies import Policy

log = logging.getLogger("hybrid_scheduler")
#: ``hybrid_scheduler_fallbacks_total`` reason of passes made without the learned model.
MODEL_FALLBACK_REASON = "model-unavailable"


class SchedulingCycle:
    """Decides one batch at a time."""

    def __init__(
        self,
        cache: ClusterCache,
        queue: SchedulingQueue,
        policy: Policy,
        rng: np.random.Generator,
        metrics: OperatorMetrics,
        clock: Callable[[], float],
        batch_size: int,
        collector: UtilisationCollector | None = None,
        min_resources_of: MinResourcesOf | None = None,
        binding: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self.cache = cache
        self.queue = queue
        self.policy = policy
        self.rng = rng
        self.metrics = metrics
        self.clock = clock
        self.batch_size = batch_size
        self.collector = collector
        #: Each gang's ``minResources`` (None: not checked).
        self.min_resources_of = min_resources_of
        #: Whether a pod's binding is on its way (the binding cycle holds its ticket).
        self.binding = binding
        self.arbitrator = held_arbitrator(policy)
        #: The notices of the last pass's pods left pending with a node held, by UID.
        self.notices: dict[str, ReservationNotice] = {}
        #: The arbitrator's count of backfilled placements already exported.
        self.backfilled_seen = 0

    def decide(self) -> list[Decision]:
        """Take a batch, run the profile, assume every placement; nothing is bound yet."""
        now = self.clock()
        self.queue.flush_parked(now)
        batch = self.queue.pop_batch(now, self.policy.profile.queue_sort.sort_key, self.batch_size)
        self.notices = {}
        if self.arbitrator is not None:
            batch.extend(self.queue.take(list(self.arbitrator.book)))
        batch.extend(self.queue.take(self._gang_members(batch)))
        fresh = []
        for pod in batch:
            if self.cache.is_placed(pod.uid):
                self.queue.done(pod.uid)
            elif self.binding(pod.uid):
                # Deciding it again would move its room while the binding may land: the
                # binding settles it (bound, back in the queue, or gone).
                log.warning(
                    "%s was queued while its binding is on its way: left to that binding",
                    pod.key,
                )
            else:
                fresh.append(pod)
        if not fresh:
            return []
        try:
            return self._decide(fresh, now)
        except Exception:
            for pod in fresh:
                self.cache.forget(pod.uid)
                self.queue.back_off(pod.uid, now)
            raise

    def _gang_members(self, batch: list[PendingPod]) -> list[str]:
        """The queued pods to decide with ``batch`` so that no gang is split across passes:
        every queued member of a gang the batch has a pod of, and of every gang some of
        whose pods are bound or assumed but fewer than it needs (a binding failed midway),
        backing off or parked as they may be."""
        gangs = {p.gang_key for p in batch if p.gang_key is not None}
        gangs |= self.cache.partial_gangs()
        taken = {p.uid for p in batch}
        return [p.uid for p in self.queue.pending() if p.gang_key in gangs and p.uid not in taken]

    def _decide(self, fresh: list[PendingPod], now: float) -> list[Decision]:
        started = time.perf_counter()
        snapshot = self.cache.snapshot(now)
        offered, held = fresh, list[Decision]()
        if self.min_resources_of is not None:
            name = self.policy.profile.arbitrator.name
            offered, held = hold_out(fresh, snapshot, self.min_resources_of, self._placed, name)
        if self.collector is not None:
            apply_utilisation(snapshot, self.collector, self.cache, now)
        # The queue context learned scorers read: how much is waiting, and for what.
        snapshot.set_queue([*self.queue.pending(), *fresh])
        profile = self.policy.profile
        decided = (
            profile.schedule_batch(offered, snapshot, self.rng, explain=True) if offered else []
        )
        decisions = [*decided, *held]
        self.metrics.batch.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(fresh))
        self.metrics.observe_shares(snapshot)
        if self.collector is not None and not self.collector.status.live:
            self.metrics.fallbacks.labels(reason="metrics-unavailable").inc()
        if self.policy.fallback:
            self.metrics.fallbacks.labels(reason=MODEL_FALLBACK_REASON).inc()
        for d in decisions:
            if d.node is not None:
                self.cache.assume(d.pod, d.node)
        if self.arbitrator is not None:
            self._reservations(decisions, snapshot)
        return decisions

    def _placed(self, gang: tuple[str, str]) -> list[PendingPod]:
        """The pods of ``gang`` bound or assumed."""
        placements = (*self.cache.bound.values(), *self.cache.assumed.values())
        return [p.pod for p in placements if p.pod.gang_key == gang]

    def _reservations(self, decisions: list[Decision], snapshot: ClusterSnapshot) -> None:
        """Notices for the pods left pending with a node held; the reservation metrics."""
        assert self.arbitrator is not None
        waiting = [*self.queue.pending(), *(d.pod for d in decisions if not d.placed)]
        sort_key = self.policy.profile.queue_sort.sort_key
        self.notices = notices(decisions, snapshot, waiting, sort_key)
        self.metrics.reservations.set(len(self.arbitrator.book))
        backfilled = self.arbitrator.backfilled - self.backfilled_seen
        if backfilled > 0:
            self.metrics.backfilled.inc(backfilled)
        self.backfilled_seen = self.arbitrator.backfilled
