"""Shadow mode: what this scheduler would have done, next to what the default one did.

For every pod of the shadowed scheduler (``default-scheduler`` unless configured) that the
watch shows pending and then bound, the policy decides on the cluster as it is without
that pod, and the pod gets an annotation ``hybrid-scheduler.io/shadow`` with both nodes,
whether they agree, our score of each, and the runners-up. Nothing is bound or assumed,
so a team can compare the two on its own workload before switching.

The recorder gets exactly what it needs (the cache to snapshot, the profile, the
collector, the API), and a random generator of its own: recording never changes the real
scheduler's tie-breaks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybrid_operator.cache import ClusterCache
from hybrid_operator.k8s.api import ClusterApi
from hybrid_operator.k8s.calls import ApiThreads
from hybrid_operator.k8s.views import PodView
from hybrid_operator.observability import OperatorMetrics
from hybrid_operator.utilisation import UtilisationCollector, apply_utilisation
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import RUNNERS_UP, BatchCycle, ScoreTable
from hybrid_policy.framework.profile import SchedulingProfile
from hybrid_policy.framework.status import Status

log = logging.getLogger("hybrid_scheduler")
SHADOW_ANNOTATION = "hybrid-scheduler.io/shadow"


@dataclass(frozen=True)
class Observed:
    """A pod the shadowed scheduler bound, and where."""

    pod: PendingPod
    actual: str


@dataclass(frozen=True)
class ShadowContext:
    """What the recorder reads: the cluster, the policy, live utilisation, the clock."""

    cache: ClusterCache
    profile: SchedulingProfile
    policy_name: str
    clock: Callable[[], float]
    metrics_status: Callable[[], str]
    collector: UtilisationCollector | None = None


class ShadowRecorder:
    """Collects pods bound by the shadowed scheduler and records our would-be decision."""

    def __init__(
        self,
        shadowed: str,
        context: ShadowContext,
        api: ClusterApi,
        threads: ApiThreads,
        metrics: OperatorMetrics,
        seed: int = 0,
    ) -> None:
        self.shadowed = shadowed
        self.context = context
        self.api = api
        self.threads = threads
        self.metrics = metrics
        self.rng = np.random.default_rng(seed)
        self.seen_pending: set[str] = set()
        self.waiting: list[Observed] = []
        self.agreed = 0
        self.disagreed = 0

    def observe(self, view: PodView) -> None:
        """Note a pod of the shadowed scheduler: pending first, bound later."""
        if view.scheduler_name != self.shadowed:
            return
        if view.node_name is None:
            self.seen_pending.add(view.uid)
        elif view.uid in self.seen_pending:
            self.seen_pending.discard(view.uid)
            self.waiting.append(Observed(view.pod, view.node_name))

    def forget(self, uid: str) -> None:
        """The pod was deleted."""
        self.seen_pending.discard(uid)

    def decide(self) -> list[tuple[PendingPod, dict[str, Any]]]:
        """Our choice for every observed pod, each judged on the cluster without it."""
        observed, self.waiting = self.waiting, []
        if not observed:
            return []
        c = self.context
        now = c.clock()
        snapshot = c.cache.snapshot(now)
        if c.collector is not None:
            apply_utilisation(snapshot, c.collector, c.cache, now)
        out = []
        for item in observed:
            row = snapshot.forget(item.pod)
            table = BatchCycle(c.profile, snapshot, self.rng, explain=True).evaluate(item.pod)
            if row is not None:
                snapshot.assume(item.pod, row)
            out.append((item.pod, self._record(item, snapshot.node_index, table)))
        return out

    def _record(
        self, item: Observed, rows: dict[str, int], table: ScoreTable | Status
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "policy": self.context.policy_name,
            "actual": item.actual,
            "metrics": self.context.metrics_status(),
        }
        if isinstance(table, Status):
            record.update(wouldBe=None, agree=False, reason=table.message)
        else:
            record.update(self._choice(item, rows, table))
        agree = bool(record["agree"])
        self.agreed += agree
        self.disagreed += not agree
        self.metrics.shadow.labels(agree=str(agree).lower()).inc()
        return record

    def _choice(self, item: Observed, rows: dict[str, int], table: ScoreTable) -> dict[str, Any]:
        best = table.best(self.rng)
        names = {r: n for n, r in rows.items()}
        actual_row = rows.get(item.actual)
        feasible = actual_row is not None and actual_row in set(table.candidates.tolist())
        return {
            "wouldBe": names[best],
            "agree": names[best] == item.actual,
            "score": round(table.score_of(best), 2),
            "actualScore": round(table.score_of(actual_row), 2)
            if feasible and actual_row is not None
            else None,
            "runnersUp": [
                {"node": names[r], "score": round(score, 2)}
                for r, score in table.runners_up(best, RUNNERS_UP)
            ],
        }

    async def flush(self) -> None:
        """Decide for the observed pods and write the records (in worker threads)."""
        for pod, record in self.decide():
            try:
                await self.threads.call(self.api.annotate, pod, SHADOW_ANNOTATION, record)
            except Exception as exc:  # a record is best effort
                log.warning("could not record the shadow decision on %s: %s", pod.key, exc)
