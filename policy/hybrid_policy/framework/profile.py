"""A scheduling profile: the plugins of every phase, wired together.

A policy (``kube-default``, ``binpack``, ...) is nothing but a profile; the simulator and
the operator call :meth:`SchedulingProfile.schedule_batch` and bind what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, Decision
from hybrid_policy.framework.gangs import settle_gangs
from hybrid_policy.framework.plugins import (
    Arbitrator,
    FilterPlugin,
    QueueSortPlugin,
    ReservePlugin,
    ScorePlugin,
)
from hybrid_policy.framework.snapshot import ClusterSnapshot


class AssumeInSnapshot:
    """Default Reserve plugin: count the pod's requests on the node in the snapshot."""

    name = "AssumeInSnapshot"

    def reserve(self, pod: PendingPod, snapshot: ClusterSnapshot, node: int) -> None:
        """Count ``pod`` on node row ``node``."""
        snapshot.assume(pod, node)

    def unreserve(self, pod: PendingPod, snapshot: ClusterSnapshot) -> None:
        """Undo :meth:`reserve`; a pod that is not counted is left alone."""
        snapshot.forget(pod)


@dataclass
class SchedulingProfile:
    """The plugin set of one policy."""

    name: str
    queue_sort: QueueSortPlugin
    filters: Sequence[FilterPlugin]
    scorers: Sequence[tuple[ScorePlugin, float]]
    arbitrator: Arbitrator
    reserve: ReservePlugin = field(default_factory=AssumeInSnapshot)
    #: Whether scorers read live utilisation (the driver then fills it in).
    needs_utilisation: bool = False
    #: Whether a gang is placed all at once or not at all (:mod:`.gangs`); otherwise its
    #: pods are placed one by one, as kube-scheduler does without a gang plugin.
    gang_aware: bool = False

    def schedule_batch(
        self,
        pods: Sequence[PendingPod],
        snapshot: ClusterSnapshot,
        rng: np.random.Generator,
        explain: bool = True,
    ) -> list[Decision]:
        """QueueSort the batch, then let the arbitrator place what it can.

        Returns one decision per pod; placed pods are reserved in ``snapshot``. With
        ``explain`` off, pods that fit nowhere get a short status instead of the per-node
        reason counts (the simulator does not read them). A gang-aware profile places no
        pod of a gang that this pass leaves short of its ``min_member``.
        """
        ordered = sorted(pods, key=self.queue_sort.sort_key)
        cycle = BatchCycle(self, snapshot, rng, explain)
        cycle.expect(ordered)
        self.arbitrator.arbitrate(ordered, cycle)
        if self.gang_aware:
            return settle_gangs(cycle, cycle.decisions)
        return cycle.decisions

    def unreserve(self, decision: Decision, snapshot: ClusterSnapshot) -> None:
        """Take back a placement that could not be bound."""
        self.reserve.unreserve(decision.pod, snapshot)
