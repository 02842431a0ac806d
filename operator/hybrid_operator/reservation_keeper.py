"""What the loop keeps up for a reserving policy between passes.

The arbitrator holds its reservations across passes; the loop tells it when a holder is
still waiting although a pass did not take it (its verdict is being reported), when a
holder started or went (the reservation ends), and, from the first listing, which
reservations a restarted operator finds written on pending pods of its own
(``status.nominatedNodeName``). It also clears that field on pods of ours the watch
shows bound with it still set, once each (the Binding leaves it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from hybrid_operator.k8s.views import PodView
from hybrid_operator.reporting import Reporter
from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.queue import SchedulingQueue
from hybrid_policy.reservation import ReservingArbitrator

log = logging.getLogger("hybrid_scheduler")


class ReservationKeeper:
    """The arbitrator's reservations and the pods' ``nominatedNodeName``, between passes."""

    def __init__(
        self,
        arbitrator: ReservingArbitrator,
        reporter: Reporter,
        queue: SchedulingQueue,
        is_ours: Callable[[PodView], bool],
    ) -> None:
        self.arbitrator = arbitrator
        self.reporter = reporter
        self.is_ours = is_ours
        # A holder whose verdict of the previous pass is still being reported waits on.
        arbitrator.still_waiting = lambda uid: uid in queue
        #: Pods of ours bound with ``status.nominatedNodeName`` still set, to clear.
        self.to_clear: dict[str, PendingPod] = {}
        #: UIDs whose clearing was sent and that the watch has not yet shown cleared.
        self.clearing: set[str] = set()

    def no_longer_waiting(self, view: PodView) -> None:
        """The pod is bound, finished or terminating: its reservation ends, and a pod of
        ours bound with ``nominatedNodeName`` set has it cleared."""
        self.arbitrator.release(view.uid)
        if not self.is_ours(view):
            return
        if view.nominated_node is None or view.node_name is None:
            self.clearing.discard(view.uid)
            self.to_clear.pop(view.uid, None)
        elif view.uid not in self.clearing:
            self.to_clear[view.uid] = view.pod

    def gone(self, uid: str) -> None:
        """The pod was deleted."""
        self.arbitrator.release(uid)
        self.to_clear.pop(uid, None)
        self.clearing.discard(uid)

    def restore(self, views: Iterable[PodView], now_s: float) -> None:
        """Reservations written on pending pods of ours, held again (oldest pod first)."""
        waiting = [v for v in views if v.waiting and v.nominated_node and self.is_ours(v)]
        for view in sorted(waiting, key=lambda v: (v.pod.created_at_s, v.uid)):
            node = str(view.nominated_node)
            self.arbitrator.restore(view.uid, node, now_s)
            self.reporter.restored(view.uid, node)
            log.info("%s holds %s again (reserved before a restart)", view.pod.key, node)

    async def flush(self) -> None:
        """Clear the field on the bound pods that still carry it."""
        clears, self.to_clear = self.to_clear, {}
        for uid, pod in clears.items():
            self.clearing.add(uid)
            if not await self.reporter.clear_nomination(pod):
                self.clearing.discard(uid)  # the pod's next event tries again
