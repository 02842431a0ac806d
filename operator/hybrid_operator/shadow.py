"""Shadow mode: what this scheduler would have done, next to what the default one did.

For every pod of the shadowed scheduler (``default-scheduler`` unless configured) that the
watch shows pending and then bound, the policy decides on the cluster as it is without
that pod, and the pod gets an annotation ``hybrid-scheduler.io/shadow`` with both nodes,
whether they agree, our score of each, and the runners-up. Nothing is bound or assumed,
so a team can compare the two on its own workload before switching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybrid_operator.k8s.convert import Body, pending_pod
from hybrid_operator.utilisation import apply_utilisation
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.status import Status

if TYPE_CHECKING:
    from hybrid_operator.scheduler import Scheduler

log = logging.getLogger("hybrid_scheduler")
SHADOW_ANNOTATION = "hybrid-scheduler.io/shadow"


@dataclass(frozen=True)
class Observed:
    """A pod the shadowed scheduler bound, and where."""

    pod: PendingPod
    actual: str


class ShadowRecorder:
    """Collects pods bound by the shadowed scheduler and records our would-be decision."""

    def __init__(self, scheduler: Scheduler, shadowed: str) -> None:
        self.scheduler = scheduler
        self.shadowed = shadowed
        self.seen_pending: set[str] = set()
        self.waiting: list[Observed] = []
        self.agreed = 0
        self.disagreed = 0

    def observe(self, body: Body) -> None:
        """Note a pod of the shadowed scheduler: pending first, bound later."""
        spec = body.get("spec") or {}
        if spec.get("schedulerName") != self.shadowed:
            return
        uid = str((body.get("metadata") or {}).get("uid") or "")
        node = spec.get("nodeName")
        if not node:
            self.seen_pending.add(uid)
        elif uid in self.seen_pending:
            self.seen_pending.discard(uid)
            pod, _ = pending_pod(body)
            if pod is not None:
                self.waiting.append(Observed(pod, str(node)))

    def decide(self) -> list[tuple[PendingPod, dict[str, Any]]]:
        """Our choice for every observed pod, each judged on the cluster without it."""
        s = self.scheduler
        observed, self.waiting = self.waiting, []
        if not observed:
            return []
        now = s.clock()
        snapshot = s.cache.snapshot(now)
        if s.collector is not None:
            apply_utilisation(snapshot, s.collector, s.cache, now)
        out = []
        for item in observed:
            row = snapshot.forget(item.pod)
            cycle = BatchCycle(s.policy.profile, snapshot, s.rng, explain=True)
            table = cycle.evaluate(item.pod)
            if row is not None:
                snapshot.assume(item.pod, row)
            out.append((item.pod, self._record(item, snapshot.node_index, table)))
        return out

    def _record(
        self, item: Observed, rows: dict[str, int], table: ScoreTable | Status
    ) -> dict[str, Any]:
        s = self.scheduler
        record: dict[str, Any] = {
            "policy": s.policy.name,
            "actual": item.actual,
            "metrics": s.metrics_status,
        }
        if isinstance(table, Status):
            record.update(wouldBe=None, agree=False, reason=table.message)
        else:
            best = table.best(s.rng)
            names = {r: n for n, r in rows.items()}
            order = table.scores.argsort()[::-1]
            actual_row = rows.get(item.actual)
            feasible = actual_row is not None and actual_row in set(table.candidates.tolist())
            record.update(
                wouldBe=names[best],
                agree=names[best] == item.actual,
                score=round(table.score_of(best), 2),
                actualScore=round(table.score_of(actual_row), 2)
                if feasible and actual_row is not None
                else None,
                runnersUp=[
                    {
                        "node": names[int(table.candidates[i])],
                        "score": round(float(table.scores[i]), 2),
                    }
                    for i in order[:4]
                    if int(table.candidates[i]) != best
                ][:3],
            )
        agree = bool(record["agree"])
        self.agreed += agree
        self.disagreed += not agree
        s.metrics.shadow.labels(agree=str(agree).lower()).inc()
        return record

    async def flush(self) -> None:
        """Decide for the observed pods and write the records (in worker threads)."""
        for pod, record in self.decide():
            try:
                await self.scheduler.in_api_thread(
                    self.scheduler.api.annotate, pod, SHADOW_ANNOTATION, record
                )
            except Exception as exc:  # a record is best effort
                log.warning("could not record the shadow decision on %s: %s", pod.key, exc)
