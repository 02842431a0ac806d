"""What the preemption phase knows of the queue beyond the pods it may place: the
predicted work queued ahead of each waiting pod, and the reservations held, each with how
long it is overdue.

A reservation is *overdue* by the time since the start predicted when it was made: the
pass that makes a reservation predicts a start, later passes may push it back (a run
longer than predicted, a backfilled pod that ran over), and the driver keeps the first
prediction (:class:`OverdueBook`). A reservation moved to another node keeps it too: the
pod was promised that start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from hybrid_policy.domain import PendingPod


class WaitEstimate(StrEnum):
    """How ``shorten`` and ``shortest`` predict a waiting pod's wait."""

    RUNNING = "running"
    """Until enough running pods on its best node are predicted to end."""
    QUEUE = "queue"
    """That, plus the predicted work queued ahead of it spread over the cluster's GPUs."""


@dataclass(frozen=True, slots=True)
class Reserved:
    """A waiting pod's reservation: the node, and by how much its start is overdue."""

    node: str
    overdue_s: float


@dataclass(frozen=True, slots=True)
class QueueView:
    """The queue as the phase may read it: ``work_ahead`` gives the GPU-seconds of
    predicted work of the pods queued ahead of a waiting pod (None: not known), and
    ``reserved`` the reservations held, by pod uid."""

    work_ahead: Callable[[PendingPod], float] | None = None
    reserved: Mapping[str, Reserved] = field(default_factory=dict)


def work_ahead_table(
    queue: Iterable[PendingPod], gpu_seconds: Callable[[PendingPod], float]
) -> dict[str, float]:
    """For each pod of ``queue`` (in queue order), the GPU-seconds of ``gpu_seconds`` of
    the pods before it."""
    table: dict[str, float] = {}
    total = 0.0
    for pod in queue:
        table[pod.uid] = total
        total += gpu_seconds(pod)
    return table


@dataclass
class OverdueBook:
    """The start first predicted for each reservation, kept across passes."""

    promised: dict[str, float] = field(default_factory=dict)

    def update(self, held: Mapping[str, tuple[str, float]], now_s: float) -> dict[str, Reserved]:
        """The reservations ``held`` now (uid: node and predicted start), each with how
        long it is overdue; reservations no longer held are forgotten."""
        for uid in [u for u in self.promised if u not in held]:
            del self.promised[uid]
        out: dict[str, Reserved] = {}
        for uid, (node, start_s) in held.items():
            promised = self.promised.setdefault(uid, start_s)
            out[uid] = Reserved(node, max(now_s - promised, 0.0))
        return out
