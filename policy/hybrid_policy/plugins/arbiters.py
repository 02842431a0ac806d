"""Arbitrators that settle a batch without a game: queue order, and DRF across namespaces.

``SequentialArbitrator`` is kube-scheduler's behaviour: one pod at a time in queue order,
each to its best-scoring node. ``DrfArbitrator`` interleaves namespaces by weighted
dominant resource share (Ghodsi et al., NSDI'11), as Volcano's and KAI's DRF plugins do:
the namespace furthest below its share goes next; a pod that fits nowhere is skipped, so
the pass stays work-conserving. Both serve a gang as one unit, all of it or nothing
(:mod:`hybrid_policy.framework.gangs`); a profile that is not gang-aware never sees one,
since its batch is served pod by pod (each pod its own unit).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle
from hybrid_policy.framework.gangs import Unit, best_node, place_one, place_unit, units
from hybrid_policy.framework.shares import weighted_dominant_share


def place_best(pod: PendingPod, cycle: BatchCycle) -> bool:
    """Evaluate ``pod`` and commit it to its best node; False (and rejected) if none fits."""
    return place_one(pod, cycle, lambda _, table: best_node(pod, table, cycle)) is None


class SequentialArbitrator:
    """No arbitration: pods in queue order, each to its best node."""

    name = "sequential"

    def use_wall_clock(self, enabled: bool) -> None:
        """Nothing to do: no decision here depends on wall time."""

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        """Place every pod of ``batch`` in order (a gang all at once, where it stands)."""
        for unit in _units(batch, cycle):
            place_unit(unit, cycle)


class DrfArbitrator:
    """Weighted dominant-resource fairness across namespaces."""

    name = "drf"

    def use_wall_clock(self, enabled: bool) -> None:
        """Nothing to do: no decision here depends on wall time."""

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        """Repeatedly serve the head unit (a pod, or a gang) of the namespace with the
        lowest dominant share."""
        queues: dict[str, deque[Unit]] = {}
        for unit in _units(batch, cycle):
            queues.setdefault(unit[0].namespace, deque()).append(unit)
        shares = {ns: weighted_dominant_share(cycle.snapshot, ns) for ns in queues}
        while queues:
            namespace = min(queues, key=lambda ns: (shares[ns], ns))
            unit = queues[namespace].popleft()
            if not queues[namespace]:
                del queues[namespace]
            if place_unit(unit, cycle) and namespace in queues:
                shares[namespace] = weighted_dominant_share(cycle.snapshot, namespace)


def _units(batch: Sequence[PendingPod], cycle: BatchCycle) -> list[Unit]:
    """Gangs as units when the profile is gang-aware; otherwise every pod alone."""
    if cycle.profile.gang_aware:
        return units(batch, cycle)
    return [(pod,) for pod in batch]
