"""The scheduling queue: active pods in QueueSort order, unschedulable pods parked.

Like kube-scheduler's queue, a pod that fit nowhere is parked until something frees
capacity (a pod finishes, a node appears), then retried after a back-off that doubles on
each failure. Pods are deduplicated by UID.

No wake-up is lost: a cluster change that comes while a pod is being decided (it was
popped, its verdict is not in yet) cannot move it, so when that pod is then found
unschedulable it goes back to the active queue instead of being parked (kube-scheduler's
move-request cycle). As a last resort, a pod parked longer than ``max_parked_s`` is tried
again whatever happened.

A pod whose placement's outcome is unknown (its binding got no answer: it may have been
committed) is not decided again: it waits, with the same back-off, for the binding to be
sent again (:meth:`SchedulingQueue.wait_to_resend`), and no batch takes it meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hybrid_policy.domain import PendingPod

SortKey = Callable[[PendingPod], tuple[float | int | str, ...]]


@dataclass
class QueuedPod:
    """A pod in the queue with its retry bookkeeping."""

    pod: PendingPod
    attempts: int = 0
    not_before_s: float = 0.0
    #: The queue's move count when the pod was popped.
    popped_at_move: int = 0
    #: When it was parked, in the driver's clock.
    parked_at_s: float = 0.0


class SchedulingQueue:
    """Active, back-off and unschedulable pods; time is the driver's clock in seconds."""

    def __init__(
        self,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
        max_parked_s: float = 300.0,
    ) -> None:
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_parked_s = max_parked_s
        #: How many times a cluster change asked for parked pods to be tried again.
        self._moves = 0
        self._active: dict[str, QueuedPod] = {}
        self._unschedulable: dict[str, QueuedPod] = {}
        self._in_flight: dict[str, QueuedPod] = {}
        #: Pods whose binding is to be sent again once their back-off ends.
        self._resending: dict[str, QueuedPod] = {}

    def __len__(self) -> int:
        return len(self._active) + len(self._unschedulable)

    def __contains__(self, uid: object) -> bool:
        return any(uid in pods for pods in self._states())

    def _states(self) -> tuple[dict[str, QueuedPod], ...]:
        return self._active, self._unschedulable, self._in_flight, self._resending

    @property
    def in_flight_count(self) -> int:
        """Pods taken by a pass and not yet bound, parked or requeued."""
        return len(self._in_flight)

    @property
    def resending_count(self) -> int:
        """Pods waiting for their binding to be sent again."""
        return len(self._resending)

    def is_in_flight(self, uid: str) -> bool:
        """Whether ``uid`` was taken by a pass and is not settled yet."""
        return uid in self._in_flight

    @property
    def active_count(self) -> int:
        """Pods ready to be tried (possibly still backing off)."""
        return len(self._active)

    def add(self, pod: PendingPod) -> bool:
        """Queue a new pod; False when its UID is already queued."""
        if pod.uid in self:
            return False
        self._active[pod.uid] = QueuedPod(pod)
        return True

    def remove(self, uid: str) -> PendingPod | None:
        """Drop a pod (bound elsewhere or deleted); returns it when it was queued."""
        for pods in self._states():
            entry = pods.pop(uid, None)
            if entry is not None:
                return entry.pod
        return None

    def pop_batch(
        self, now_s: float, sort_key: SortKey, limit: int | None = None
    ) -> list[PendingPod]:
        """Take up to ``limit`` active pods whose back-off has expired, in queue order."""
        ready = [e for e in self._active.values() if e.not_before_s <= now_s]
        ready.sort(key=lambda e: sort_key(e.pod))
        if limit is not None:
            ready = ready[:limit]
        for entry in ready:
            del self._active[entry.pod.uid]
            entry.popped_at_move = self._moves
            self._in_flight[entry.pod.uid] = entry
        return [e.pod for e in ready]

    def take(self, uids: Iterable[str]) -> list[PendingPod]:
        """Take the queued pods ``uids`` now, backing off or parked as they may be (a pod
        holding a reservation is decided on every pass); those not queued are skipped."""
        taken = []
        for uid in uids:
            entry = self._active.pop(uid, None) or self._unschedulable.pop(uid, None)
            if entry is None:
                continue
            entry.popped_at_move = self._moves
            self._in_flight[uid] = entry
            taken.append(entry.pod)
        return taken

    def done(self, uid: str) -> None:
        """The popped pod was bound: forget it."""
        self._in_flight.pop(uid, None)

    def park(self, uid: str, now_s: float) -> None:
        """The popped pod fit nowhere: wait for a cluster change, with back-off."""
        entry = self._delay(uid, now_s)
        if entry is None:
            return
        if entry.popped_at_move != self._moves:
            # The cluster changed while the pod was being decided: that change may let it
            # fit, and it came too early to move it. Retry after the back-off.
            self._active[uid] = entry
            return
        entry.parked_at_s = now_s
        self._unschedulable[uid] = entry

    def back_off(self, uid: str, now_s: float) -> None:
        """The popped pod's attempt failed (an error, not a verdict): retry after back-off."""
        entry = self._delay(uid, now_s)
        if entry is not None:
            self._active[uid] = entry

    def wait_to_resend(self, uid: str, now_s: float) -> None:
        """The popped pod's binding got no answer (it may have been committed): no pass
        decides it again; its binding is sent again after the back-off."""
        entry = self._delay(uid, now_s)
        if entry is not None:
            self._resending[uid] = entry

    def take_resends(self, now_s: float) -> list[PendingPod]:
        """Take the pods whose back-off has ended to send their binding again."""
        due = [e for e in self._resending.values() if e.not_before_s <= now_s]
        for entry in due:
            del self._resending[entry.pod.uid]
            entry.popped_at_move = self._moves
            self._in_flight[entry.pod.uid] = entry
        return [e.pod for e in due]

    def decide_again(self, uid: str) -> bool:
        """A pod waiting for its binding to be sent again is to be decided again instead,
        once its back-off ends; False if it was not waiting so."""
        entry = self._resending.pop(uid, None)
        if entry is None:
            return False
        self._active[uid] = entry
        return True

    def _delay(self, uid: str, now_s: float) -> QueuedPod | None:
        entry = self._in_flight.pop(uid, None)
        if entry is None:
            return None
        entry.attempts += 1
        backoff = self.initial_backoff_s * 2.0 ** min(entry.attempts - 1, 30)
        entry.not_before_s = now_s + min(backoff, self.max_backoff_s)
        return entry

    def requeue(self, uid: str) -> None:
        """The popped pod must be tried again soon (e.g. a bind conflict)."""
        entry = self._in_flight.pop(uid, None)
        if entry is not None:
            self._active[uid] = entry

    def move_all_to_active(self) -> int:
        """A cluster change may let parked pods fit: make them active again."""
        self._moves += 1
        moved = len(self._unschedulable)
        self._active.update(self._unschedulable)
        self._unschedulable.clear()
        return moved

    def flush_parked(self, now_s: float) -> int:
        """Try again the pods parked for longer than ``max_parked_s``; returns how many."""
        due = [
            u for u, e in self._unschedulable.items() if now_s - e.parked_at_s >= self.max_parked_s
        ]
        for uid in due:
            self._active[uid] = self._unschedulable.pop(uid)
        return len(due)

    def pending(self) -> list[PendingPod]:
        """Every queued pod (active and parked), in no particular order."""
        return [e.pod for e in (*self._active.values(), *self._unschedulable.values())]

    def next_ready_s(self) -> float | None:
        """The earliest time an active pod's back-off ends, or None when none are active."""
        if not self._active:
            return None
        return min(e.not_before_s for e in self._active.values())
