"""The reserving Arbitrator: fair order, reservations that stick, and backfill around them.

Each pass first serves the pods that already hold a reservation, in the order the
reservations were made: a holder that fits now starts (on its best-scored node that
delays no earlier holder); one that does not keeps its node unless another node is
predicted to start it at least ``switch_margin_s`` earlier (the sticky rule). Then the
other pods come in fair order (:func:`~hybrid_policy.reservation.order.fair_order`); each
goes to its best-scored node among those where it delays no reservation, and when the
pod whose turn it is fits nowhere while fewer than the mode's bound of reservations are
held, the node where it is predicted to start earliest is reserved for it. A pod delays
a reservation on a node when, by its predicted duration, it would still be running at
the reserved start and the node would then lack room for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hybrid_policy.domain import PendingPod
from hybrid_policy.framework.cycle import BatchCycle, ScoreTable
from hybrid_policy.framework.gangs import place_gangs
from hybrid_policy.framework.nomination import Nomination
from hybrid_policy.framework.snapshot import BoolArray, FloatArray
from hybrid_policy.framework.status import Code, Status
from hybrid_policy.prediction.predictor import RuntimePredictor
from hybrid_policy.reservation.model import BackfillMode, Held, Hold, ReservationSettings
from hybrid_policy.reservation.order import fair_order
from hybrid_policy.reservation.timeline import Timeline

RESERVATION = "Reservation"
_BLOCKED = Status(
    Code.UNSCHEDULABLE,
    ("the nodes with room are reserved for pods ahead in the queue",),
    RESERVATION,
)


class ReservingArbitrator:
    """Fair order with reservations and backfill (``settings.mode`` says which)."""

    def __init__(
        self, predictor: RuntimePredictor, settings: ReservationSettings | None = None
    ) -> None:
        self.predictor = predictor
        self.settings = settings or ReservationSettings()
        self.name = f"fair-{self.settings.mode.value}"
        #: Reservations held across passes, by pod UID, oldest first.
        self.book: dict[str, Held] = {}
        #: Reservations made, moved to another node, and pods placed on a held node.
        self.made = self.moved = self.backfilled = 0
        #: Whether a holder missing from a batch still waits (the driver says; by default
        #: a holder missing from a batch has started or gone, and its reservation ends).
        self.still_waiting: Callable[[str], bool] = lambda _: False

    def restore(self, uid: str, node: str, at_s: float) -> None:
        """Hold ``node`` for pod ``uid`` again, as made at ``at_s`` (a driver that restarted
        and found the reservation on the pod); it goes after the reservations held now."""
        if uid not in self.book:
            self.book[uid] = Held(uid, node, at_s, at_s)

    def release(self, uid: str) -> None:
        """Pod ``uid`` started elsewhere or went: its reservation, if any, ends."""
        self.book.pop(uid, None)

    def use_wall_clock(self, enabled: bool) -> None:
        """Nothing to do: no decision here depends on wall time."""

    def arbitrate(self, batch: Sequence[PendingPod], cycle: BatchCycle) -> None:
        """Commit or reject every pod of ``batch`` (in queue order)."""
        pods = {pod.uid: pod for pod in batch}
        for uid in [u for u in self.book if u not in pods and not self.still_waiting(u)]:
            del self.book[uid]
        # Gangs are placed first, whole or not at all, and never on a reserved node.
        rows = {cycle.snapshot.node_index.get(h.node) for h in self.book.values()}
        batch = place_gangs(batch, cycle, avoid={row for row in rows if row is not None})
        settled = _Pass(self, cycle)
        for held in [h for uid, h in self.book.items() if uid not in pods]:
            settled.keep(held)
        holders = [pods[uid] for uid in self.book if uid in pods]
        for pod in holders:
            settled.serve(pod, holder=True)
        rest = [pod for pod in batch if pod.uid not in settled.done]
        for pod in fair_order(rest, cycle.snapshot, settled.now_s, self.settings.max_wait_s):
            settled.serve(pod, holder=False)


class _Pass:
    """The state of one pass: the timeline (built when first needed) and the holds."""

    def __init__(self, owner: ReservingArbitrator, cycle: BatchCycle) -> None:
        self.owner = owner
        self.settings = owner.settings
        self.predictor = owner.predictor
        self.cycle = cycle
        self.snapshot = cycle.snapshot
        self.now_s = cycle.snapshot.now_s
        self.done: set[str] = set()
        self.holds = 0
        self.placed: list[tuple[int, float, FloatArray]] = []
        self._timeline: Timeline | None = None

    @property
    def timeline(self) -> Timeline:
        """The pass's timeline, built on first use."""
        if self._timeline is None:
            self._timeline = Timeline(self.snapshot, self.predictor, self.now_s, self.placed)
        return self._timeline

    def keep(self, held: Held) -> None:
        """Hold the node of a holder missing from the batch that still waits (its driver
        is settling it), from its predicted start, so that no pod of the batch delays it."""
        row = self.snapshot.node_index.get(held.node)
        if held.pod is None or row is None:
            return
        start = max(held.predicted_start_s, self.now_s)
        end = start + float(self._durations(held.pod)[row])
        need = self.snapshot.request_vector(held.pod)
        self.timeline.hold(Hold(held.uid, row, start, end, need))
        self.holds += 1

    def serve(self, pod: PendingPod, holder: bool) -> None:
        """Start ``pod`` if it delays no reservation; else reserve for it or leave it."""
        self.done.add(pod.uid)
        table = self.cycle.evaluate(pod)
        status = table if isinstance(table, Status) else _BLOCKED
        if isinstance(table, ScoreTable):
            allowed = self._allowed(pod, table)
            if allowed.any():
                self._commit(pod, table, allowed)
                return
        may_reserve = holder or self.holds < self.settings.bound
        if status.code is Code.UNSCHEDULABLE and may_reserve and self._reserve(pod, status):
            return
        self.owner.book.pop(pod.uid, None)
        self.cycle.reject(pod, status)

    def _durations(self, pod: PendingPod) -> FloatArray:
        work = self.predictor.duration(pod, self.now_s).seconds
        durations: FloatArray = work * 100.0 / np.maximum(self.snapshot.performance, 1e-9)
        return durations

    def _allowed(self, pod: PendingPod, table: ScoreTable) -> BoolArray:
        """Which candidates of ``table`` delay no reservation held in this pass."""
        allowed = np.ones(table.candidates.size, dtype=bool)
        if self._timeline is None or not self._timeline.holds:
            return allowed
        timeline = self._timeline
        need = self.snapshot.request_vector(pod)
        factor = self.settings.backfill_factor
        durations: FloatArray | None = None
        for row in timeline.holds:
            i = int(np.searchsorted(table.candidates, row))
            if i == table.candidates.size or table.candidates[i] != row:
                continue  # candidates are in node order
            if self.settings.mode is BackfillMode.RESERVE:
                allowed[i] = False
                continue
            if durations is None:
                durations = self._durations(pod)
            end = self.now_s + factor * float(durations[row])
            allowed[i] = timeline.fits_from(row, need, self.now_s, end)
        return allowed

    def _commit(self, pod: PendingPod, table: ScoreTable, allowed: BoolArray) -> None:
        if not allowed.all():
            table = ScoreTable(pod, table.candidates[allowed], table.scores[allowed])
        row = table.best(self.cycle.rng)
        self.cycle.commit(pod, row, table)
        self.owner.book.pop(pod.uid, None)
        work = self.predictor.duration(pod, self.now_s).seconds
        run_s = work * 100.0 / max(float(self.snapshot.performance[row]), 1e-9)
        end = self.now_s + self.settings.backfill_factor * run_s
        need = self.snapshot.request_vector(pod)
        if self._timeline is not None:
            if row in self._timeline.holds:
                self.owner.backfilled += 1
            self._timeline.place(row, end, need)
        else:
            self.placed.append((row, end, need))

    def _reserve(self, pod: PendingPod, status: Status) -> bool:
        """Hold the node where ``pod`` is predicted to start earliest (sticky); False when
        it can start on no node."""
        rows = self._possible_rows(pod)
        if not rows.any():
            return False
        durations = self._durations(pod)
        starts, sources = self.timeline.earliest_start(pod, rows, durations)
        order = np.lexsort((np.arange(len(starts)), starts + durations, starts))
        row = int(order[0])
        if not np.isfinite(starts[row]):
            return False
        held = self.owner.book.get(pod.uid)
        if held is not None:
            kept = self.snapshot.node_index.get(held.node)
            margin = self.settings.switch_margin_s
            if kept is not None and starts[kept] <= starts[row] + margin:
                row = kept
            else:
                self.owner.moved += 1
        else:
            self.owner.made += 1
        start = float(starts[row])
        need = self.snapshot.request_vector(pod)
        self.timeline.hold(Hold(pod.uid, row, start, start + float(durations[row]), need))
        node = self.snapshot.nodes[row].name
        made_at = held.made_at_s if held is not None else self.now_s
        self.owner.book[pod.uid] = Held(pod.uid, node, start, made_at, pod)
        nomination = Nomination(node, row, start, self.holds, sources[row])
        self.holds += 1
        reason = f"{status.message}; {nomination.describe(self.now_s)}"
        self.cycle.reject(pod, Status(Code.UNSCHEDULABLE, (reason,), RESERVATION), nomination)
        return True

    def _possible_rows(self, pod: PendingPod) -> BoolArray:
        """Nodes ``pod`` could run on once empty: static filters and allocatable."""
        snap = self.snapshot
        mask: BoolArray = np.all(snap.allocatable >= snap.request_vector(pod) - 1e-9, axis=1)
        for plugin in self.cycle.profile.filters:
            if plugin.static:
                mask &= plugin.filter(pod, snap)
        return mask
