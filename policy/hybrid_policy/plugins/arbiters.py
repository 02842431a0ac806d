"""Arbitrators that settle a batch without a game: queue order, and DRF across namespaces.

``SequentialArbitrator`` is kube-scheduler's behaviour: one pod at a time in queue order,
each to its best-scoring node. ``DrfArbitrator`` interleaves namespaces by weighted
dominant resource share (Ghodsi et al., NSDI'11), as Volcano's and KAI's DRF plugins do:
the namespace furthest below its share goes next; a pod that fits nowhere is skipped, so
the pass stays work-conserving.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.shares import weighted_dominant_share


def place_best(pod: PendingPod, cycle: BatchCycle) -> bool:
    """Evaluate ``pod`` and commit it to its best node; False (and rejected) if none fits."""
    table = cycle.evaluate(pod)
    if isinstance(table, ScoreTable):
        cycle.commit(pod, table.best(cycle.rng), table)
        return True
    cycle.reject(pod, table)
    return False


class SequentialArbitrator:
    """No arbitration: pods in queue order, each to its best node."""

    name = "sequential"

    def use_wall_clock(self, enabled: bool) -> None:
        """Nothing to do: no decision here depends on wall time."""

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        """Place every pod of ``batch`` in order."""
        for pod in batch:
            place_best(pod, cycle)


class DrfArbitrator:
    """Weighted dominant-resource fairness across namespaces."""

    name = "drf"

    def use_wall_clock(self, enabled: bool) -> None:
        """Nothing to do: no decision here depends on wall time."""

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        """Repeatedly serve the head pod of the namespace with the lowest dominant share."""
        queues: dict[str, deque[PendingPod]] = {}
        for pod in batch:
            queues.setdefault(pod.namespace, deque()).append(pod)
        shares = {ns: weighted_dominant_share(cycle.snapshot, ns) for ns in queues}
        while queues:
            namespace = min(queues, key=lambda ns: (shares[ns], ns))
            pod = queues[namespace].popleft()
            if not queues[namespace]:
                del queues[namespace]
            if place_best(pod, cycle) and namespace in queues:
                shares[namespace] = weighted_dominant_share(cycle.snapshot, namespace)
