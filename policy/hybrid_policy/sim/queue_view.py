"""What the simulator tells the preemption phase about its queue: the predicted work
queued ahead of each waiting pod (in the policy's queue order, read only when a rule asks)
and the reservations a reserving policy holds, each with how long it is overdue."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.plugins import Arbitrator
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.preemption.queue import OverdueBook, QueueView, work_ahead_table
from hybrid_policy.reservation.arbiter import ReservingArbitrator
from hybrid_policy.resources import GPU


class QueueReader:
    """Builds the phase's :class:`QueueView` once per pass, keeping the start first
    predicted for each reservation across passes."""

    def __init__(self) -> None:
        self.overdue = OverdueBook()

    def view(
        self,
        arbitrator: Arbitrator,
        queue: Callable[[], Sequence[PendingPod]],
        predictor: RuntimePredictor | None,
        mean_performance: float,
        now_s: float,
    ) -> QueueView:
        """The view at ``now_s``: ``queue`` gives the waiting pods in queue order (called
        only when a rule asks for the work ahead of a pod)."""
        held: dict[str, tuple[str, float]] = {}
        if isinstance(arbitrator, ReservingArbitrator):
            held = {uid: (h.node, h.predicted_start_s) for uid, h in arbitrator.book.items()}
        reserved = self.overdue.update(held, now_s)
        if predictor is None:
            return QueueView(None, reserved)
        scale = 100.0 / max(mean_performance, 1e-9)
        table: dict[str, float] = {}

        def gpu_seconds(pod: PendingPod) -> float:
            seconds = predictor.duration(pod, now_s).seconds * scale
            return seconds * float(pod.requests.get(GPU, 0))

        def work_ahead(pod: PendingPod) -> float:
            if not table:
                table.update(work_ahead_table(queue(), gpu_seconds))
            return table.get(pod.uid, 0.0)

        return QueueView(work_ahead, reserved)
