"""The scheduling cycle: take a batch from the queue, decide on a snapshot, assume.

It runs the policy's profile (the same code the simulator runs) on a snapshot of the
cache with live utilisation applied, and assumes every placement in the cache, so the next
pass counts it before the watch shows the binding. Nothing is bound here. If anything
raises, every pod of the batch goes back to the queue with a back-off and no assumption
is left behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from hybrid_operator.cache import ClusterCache
from hybrid_operator.observability import OperatorMetrics
from hybrid_operator.utilisation import UtilisationCollector, apply_utilisation
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import Decision
from hybrid_policy.framework.queue import SchedulingQueue
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
    ) -> None:
        self.cache = cache
        self.queue = queue
        self.policy = policy
        self.rng = rng
        self.metrics = metrics
        self.clock = clock
        self.batch_size = batch_size
        self.collector = collector

    def decide(self) -> list[Decision]:
        """Take a batch, run the profile, assume every placement; nothing is bound yet."""
        now = self.clock()
        self.queue.flush_parked(now)
        batch = self.queue.pop_batch(now, self.policy.profile.queue_sort.sort_key, self.batch_size)
        fresh = []
        for pod in batch:
            if self.cache.is_placed(pod.uid):
                self.queue.done(pod.uid)
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

    def _decide(self, fresh: list[PendingPod], now: float) -> list[Decision]:
        started = time.perf_counter()
        snapshot = self.cache.snapshot(now)
        if self.collector is not None:
            apply_utilisation(snapshot, self.collector, self.cache, now)
        # The queue context learned scorers read: how much is waiting, and for what.
        snapshot.set_queue([*self.queue.pending(), *fresh])
        decisions = self.policy.profile.schedule_batch(fresh, snapshot, self.rng, explain=True)
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
        return decisions
